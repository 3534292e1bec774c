from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from export.synthetic import speech_like
from service.web.app import create_app
from service.web.prometheus import Metrics
from service.web.runtime import Runtime, load_runtime
from service.web.settings import Settings
from tests.tiny_artifacts import FIXTURE, export_tiny

DATA = Path(__file__).parent / "data"

hypothesis.settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True)
hypothesis.settings.register_profile("fuzz", max_examples=5000, deadline=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
API_KEY = "test-key-123"
pytest_plugins = ["pytester"]
SKIP_IN_CI = "CI runs the whole suite: scripts/test installs every extra and tool the tests need"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI a skipped test fails: a missing extra or tool must not pass as a shorter suite."""
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and os.environ.get("CI", "") not in ("", "0", "false")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped ({reason}); {SKIP_IN_CI}"
    return report


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed tiny export (tests/tiny_artifacts.py), copied: the service's tests need no torch."""
    out = tmp_path_factory.mktemp("artifacts")
    for path in FIXTURE.iterdir():
        shutil.copy(path, out / path.name)
    return out


@pytest.fixture(scope="session")
def exported_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of the tiny random-init architecture, made now: for the export's own tests."""
    return export_tiny(tmp_path_factory.mktemp("exported"))


@pytest.fixture(scope="session")
def layered_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Tiny exports that keep one and both of its two transformer layers."""
    return {layers: export_tiny(tmp_path_factory.mktemp(f"layers-{layers}"), layers) for layers in (1, 2)}


@pytest.fixture(scope="session")
def settings(tiny_artifacts: Path) -> Settings:
    return Settings(api_key=API_KEY, artifacts_dir=tiny_artifacts, threads=1)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def make_client(settings: Settings, **changes: Any) -> TestClient:
    return TestClient(create_app(replace(settings, **changes)), raise_server_exceptions=False)


@contextmanager
def serving(settings: Settings, **changes: Any) -> Iterator[tuple[TestClient, Runtime]]:
    """A running app and the Runtime its lifespan loaded, for tests that reach inside."""
    loaded: list[Runtime] = []

    def load(s: Settings, metrics: Metrics) -> Runtime:
        loaded.append(load_runtime(s, metrics))
        return loaded[0]

    app = create_app(replace(settings, **changes), load=load)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, loaded[0]


def encode(waveform: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def speech(seconds: float = 3.0, seed: int = 1, natural: bool = True) -> np.ndarray:
    return speech_like(seconds, seed, natural)


def payload(audio: bytes, language: str = "English", fmt: str = "mp3") -> dict[str, str]:
    return {"language": language, "audioFormat": fmt, "audioBase64": base64.b64encode(audio).decode()}


def post(client: TestClient, body: object, key: str | None = API_KEY) -> tuple[int, dict[str, object]]:
    headers = {"x-api-key": key} if key is not None else {}
    response = client.post("/api/voice-detection", json=body, headers=headers)
    return response.status_code, response.json()


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of recordings for the scan: three clips, a broken file, a note, a labels.csv."""
    root = tmp_path_factory.mktemp("archive")
    (root / "calls" / "2026").mkdir(parents=True)
    (root / "calls" / "a.wav").write_bytes(encode(speech(3.0, seed=1), 16_000, "WAV", "PCM_16"))
    (root / "calls" / "2026" / "b.flac").write_bytes(
        encode(speech(6.0, seed=2, natural=False), 16_000, "FLAC")
    )
    (root / "calls" / "2026" / "c.MP3").write_bytes((DATA / "sample-espeak.mp3").read_bytes())
    (root / "calls" / "broken.ogg").write_bytes(b"OggS but not really")
    (root / "calls" / "notes.txt").write_text("not audio")
    with (root / "calls" / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "group", "language"])
        writer.writerow(["a.wav", "HUMAN", "people", "English"])
        writer.writerow(["2026/b.flac", "AI_GENERATED", "synth", "English"])
        writer.writerow(["2026/c.MP3", "AI_GENERATED", "espeak", "English"])
    return root / "calls"


def with_foreign_votes(artifacts: Path, folder: Path) -> Path:
    """A copy of ``artifacts`` in ``folder`` whose votes say they were learned for another graph."""
    shutil.copytree(artifacts, folder)
    votes = json.loads((folder / "votes.json").read_text())
    votes["provenance"]["graph_sha256"] = "0" * 64
    (folder / "votes.json").write_text(json.dumps(votes))
    return folder
