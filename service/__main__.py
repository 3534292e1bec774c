"""Run the voice-detection service with uvicorn: ``python -m service`` (settings from the environment)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from service.detector.audio import quiet_decoder_notes
from service.detector.malloc import limit_fragmentation
from service.web.app import create_app
from service.web.server import server_config
from service.web.settings import Settings, SettingsError


def main() -> int:
    limit_fragmentation()
    quiet_decoder_notes()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"voicecheck: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    server = uvicorn.Server(server_config(create_app(settings), settings))
    server.run()
    return 0 if server.started else 3  # 3: start-up failed (the log says why)


if __name__ == "__main__":
    raise SystemExit(main())
