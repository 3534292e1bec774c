"""Every setting, read from environment variables in one place (see the README table)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from service.detector.windows import DEFAULT_WINDOW_SECONDS, WINDOW_SECONDS_RANGE

DEFAULT_LANGUAGES = ("Tamil", "English", "Hindi", "Malayalam", "Telugu")
LOG_LEVELS = ("debug", "info", "warning", "error")
N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting is missing or out of range; the message names the variable and what it allows."""


@dataclass(frozen=True)
class Settings:
    api_key: str
    artifacts_dir: Path = Path("artifacts")
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 2
    max_body_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: float = 300.0
    min_audio_seconds: float = 0.5
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    max_concurrent: int = 1
    max_queue: int = 8
    queue_timeout_seconds: float = 20.0
    deadline_seconds: float = 20.0
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    min_upload_bytes_per_second: int = 64 * 1024
    max_connections: int = 64
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    cors_origins: tuple[str, ...] = ()
    rate_limit_per_minute: int = 0
    log_level: str = "info"
    stream_max_seconds: float = 600.0
    stream_idle_seconds: float = 10.0
    stream_max_frame_bytes: int = 128 * 1024
    stream_max_open: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        key = _api_key(env)
        defaults = cls(api_key=key)
        settings = cls(
            api_key=key,
            artifacts_dir=artifacts_dir(env),
            host=env.get("HOST", defaults.host),
            port=_int(env, "PORT", defaults.port, 1, 65535),
            threads=_int(env, "THREADS", defaults.threads, 1, 64),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes, 1024, 1 << 30),
            max_audio_seconds=_float(env, "MAX_AUDIO_SECONDS", defaults.max_audio_seconds, 1.0, 3600.0),
            min_audio_seconds=_float(env, "MIN_AUDIO_SECONDS", defaults.min_audio_seconds, 0.1, 10.0),
            window_seconds=_float(env, "WINDOW_SECONDS", defaults.window_seconds, *WINDOW_SECONDS_RANGE),
            max_concurrent=_int(env, "MAX_CONCURRENT", defaults.max_concurrent, 1, 64),
            max_queue=_int(env, "MAX_QUEUE", defaults.max_queue, 0, 1000),
            queue_timeout_seconds=_float(
                env, "QUEUE_TIMEOUT_SECONDS", defaults.queue_timeout_seconds, 0.1, 300.0
            ),
            deadline_seconds=_float(env, "DEADLINE_SECONDS", defaults.deadline_seconds, 2.0, 600.0),
            header_timeout_seconds=_float(
                env, "HEADER_TIMEOUT_SECONDS", defaults.header_timeout_seconds, 1.0, 120.0
            ),
            body_timeout_seconds=_float(
                env, "BODY_TIMEOUT_SECONDS", defaults.body_timeout_seconds, 1.0, 300.0
            ),
            min_upload_bytes_per_second=_int(
                env, "MIN_UPLOAD_BYTES_PER_SECOND", defaults.min_upload_bytes_per_second, 1024, 1 << 30
            ),
            max_connections=_int(env, "MAX_CONNECTIONS", defaults.max_connections, 4, 10_000),
            languages=_names(env, "LANGUAGES", defaults.languages),
            cors_origins=_names(env, "CORS_ORIGINS", ()),
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 0, 0, 100_000),
            log_level=_choice(env, "LOG_LEVEL", defaults.log_level, LOG_LEVELS),
            stream_max_seconds=_float(env, "STREAM_MAX_SECONDS", defaults.stream_max_seconds, 5.0, 7200.0),
            stream_idle_seconds=_float(env, "STREAM_IDLE_SECONDS", defaults.stream_idle_seconds, 0.1, 300.0),
            stream_max_frame_bytes=_int(
                env, "STREAM_MAX_FRAME_BYTES", defaults.stream_max_frame_bytes, 1024, 8 * 1024 * 1024
            ),
            stream_max_open=_int(env, "STREAM_MAX_OPEN", defaults.stream_max_open, 1, 1000),
        )
        if not env.get("STREAM_MAX_OPEN"):  # the default leaves half the connections to HTTP
            settings = replace(
                settings, stream_max_open=min(settings.stream_max_open, settings.max_connections // 2)
            )
        if settings.min_audio_seconds >= settings.max_audio_seconds:
            raise SettingsError("MIN_AUDIO_SECONDS must be below MAX_AUDIO_SECONDS")
        if settings.stream_max_open >= settings.max_connections:
            raise SettingsError(
                "STREAM_MAX_OPEN must be below MAX_CONNECTIONS: open streams hold connections, "
                "and the HTTP routes need some"
            )
        return settings


def artifacts_dir(env: Mapping[str, str] | None = None) -> Path:
    """ARTIFACTS_DIR, else ./artifacts: the service's graph, and ``voicecheck scan``'s default."""
    env = os.environ if env is None else env
    return Path(env.get("ARTIFACTS_DIR") or "artifacts")


def _api_key(env: Mapping[str, str]) -> str:
    """API_KEY, or else the first line of the file API_KEY_FILE names (readable by its owner only)."""
    key = env.get("API_KEY", "").strip()
    if not key and env.get("API_KEY_FILE"):
        key = read_key_file(Path(env["API_KEY_FILE"]))
    if not key.isascii() or not key.isprintable():
        raise SettingsError("API_KEY must be printable ASCII (it travels in an HTTP header)")
    if not key:
        raise SettingsError(
            "API_KEY is not set: the service needs a secret key that clients send in the "
            "x-api-key header (for example: export API_KEY=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(24))'), or API_KEY_FILE=path of a file holding it)"
        )
    return key


def read_key_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise SettingsError(f"API_KEY_FILE={path} cannot be read ({exc.strerror})") from None
    if mode & 0o077:
        raise SettingsError(f"API_KEY_FILE={path} is readable by others: chmod 600 {path}")
    return text.strip().splitlines()[0] if text.strip() else ""


def key_file(env: Mapping[str, str]) -> Path:
    """Where ``scripts/serve`` keeps the key: API_KEY_FILE, else the user's config folder."""
    if env.get("API_KEY_FILE"):
        return Path(env["API_KEY_FILE"])
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "voicecheck" / "api-key"


def create_key_file(path: Path) -> str:
    """The key in ``path``; a new random one, in a file only its owner can read, if there is none."""
    if path.exists():
        return read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int, "a whole number")


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float, "a number")


def _number(
    env: Mapping[str, str], name: str, default: N, low: N, high: N, parse: Callable[[str], N], kind: str
) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {kind} ({low:g}-{high:g})") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value:g} is out of range ({low:g}-{high:g})")
    return value


def _names(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r}; allowed: {', '.join(allowed)}")
    return value
