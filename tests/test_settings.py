from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError

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
