"""Run the voice-detection service with uvicorn: ``python -m service`` (settings from the environment)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from service.app import create_app
from service.malloc import limit_fragmentation
from service.settings import Settings, SettingsError


def main() -> int:
    limit_fragmentation()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"voicecheck: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
