from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.web.settings import Settings, SettingsError, create_key_file

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_overrides() -> None:
    settings = Settings.from_env(
        {"API_KEY": " k3y\n", "PORT": "9000", "LANGUAGES": "English, Tamil", "THREADS": "1"}
    )
    assert settings.api_key == "k3y"
    assert settings.port == 9000
    assert settings.languages == ("English", "Tamil")
    assert settings.host == "127.0.0.1"
    assert settings.artifacts_dir == Path("artifacts")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "API_KEY is not set"),
        ({"API_KEY": "   "}, "API_KEY is not set"),
        ({"API_KEY": "clé"}, "printable ASCII"),
        ({"API_KEY": "k", "PORT": "eighty"}, "PORT='eighty' is not a whole number"),
        ({"API_KEY": "k", "PORT": "70000"}, "PORT=70000 is out of range (1-65535)"),
        ({"API_KEY": "k", "MAX_AUDIO_SECONDS": "abc"}, "MAX_AUDIO_SECONDS='abc' is not a number"),
        ({"API_KEY": "k", "LOG_LEVEL": "loud"}, "allowed: debug, info, warning, error"),
        ({"API_KEY": "k", "MIN_AUDIO_SECONDS": "5", "MAX_AUDIO_SECONDS": "2"}, "below MAX_AUDIO_SECONDS"),
    ],
)
def test_bad_settings_name_the_variable_and_what_is_allowed(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_service_refuses_to_start_without_a_key() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "API_KEY is not set" in result.stderr


def test_generated_key_file_is_private_and_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "config" / "voicecheck" / "api-key"
    key = create_key_file(path)
    assert len(key) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert create_key_file(path) == key
    assert Settings.from_env({"API_KEY_FILE": str(path)}).api_key == key
    assert Settings.from_env({"API_KEY_FILE": str(path), "API_KEY": "explicit"}).api_key == "explicit"


def test_key_file_readable_by_others_or_missing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    path.write_text("shared-secret\n")
    path.chmod(0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        Settings.from_env({"API_KEY_FILE": str(path)})
    with pytest.raises(SettingsError, match="cannot be read"):
        Settings.from_env({"API_KEY_FILE": str(tmp_path / "absent")})
