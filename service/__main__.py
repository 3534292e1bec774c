"""Run the voice-detection service with uvicorn: ``python -m service`` (settings from the environment)."""

from __future__ import annotations

import ctypes
import logging
import sys

import uvicorn

from service.app import create_app
from service.settings import Settings, SettingsError


def limit_malloc_fragmentation() -> None:
    """glibc: at most two malloc arenas, and buffers over 1 MiB always mmapped so they go back to
    the OS when freed (onnxruntime runs without its own arena). Measured: steady RSS 309 -> 267 MB,
    peak after a 10 s clip 395 -> 362 MB. A no-op where glibc is absent."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_arena_max, m_mmap_threshold = -8, -3
    libc.mallopt(m_arena_max, 2)
    libc.mallopt(m_mmap_threshold, 1 << 20)


def main() -> int:
    limit_malloc_fragmentation()
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
