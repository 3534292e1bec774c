"""The Detector: the library's front door, and the one path every way in goes through."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from export.corpus import compute_features
from export.evaluate import verdicts
from service.cli.scan import FileOptions, Scanner
from service.cli.stream_client import load_samples
from service.detector import AnalysisOptions, Detector
from service.detector.artifacts import ArtifactsError
from service.detector.audio import AudioLimits, decode_audio
from service.detector.errors import AudioError
from service.detector.windows import EncoderBudget
from service.labels import Clip
from service.web.contract import success_body
from tests.conftest import API_KEY, encode, payload, post, speech, with_foreign_votes

LANGUAGE = "English"


@pytest.fixture(scope="module")
def detector(tiny_artifacts: Path) -> Detector:
    return Detector.load(tiny_artifacts, threads=1)


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 12 s at 22.05 kHz: two windows of 5 s and a shorter last one, resampled on the way."""
    path = tmp_path_factory.mktemp("call") / "call.mp3"
    path.write_bytes(encode(speech(16.5, seed=11), 22_050, "MP3"))
    return path


def answer(detector: Detector, audio: bytes) -> dict[str, object]:
    return success_body(LANGUAGE, detector.analyse(audio), detector.weights)


def test_bytes_files_paths_and_waveforms_give_one_detection(detector: Detector, call: Path) -> None:
    data = call.read_bytes()
    detection = detector.analyse(data)
    assert len(detection.segments) == 3
    assert detector.analyse(call) == detection
    assert detector.analyse(str(call)) == detection
    assert detector.analyse(io.BytesIO(data)) == detection
    assert detector.analyse_waveform(decode_audio(data)) == detection
    assert detector.analyse_waveform(decode_audio(data), EncoderBudget()) == detection  # a budget that fits
    assert detection.verdict.classification in ("AI_GENERATED", "HUMAN")
    assert 0.5 <= detection.verdict.confidence <= 1.0


def test_options_change_the_windows_and_the_limits(detector: Detector, call: Path) -> None:
    longer = detector.with_options(AnalysisOptions(window_seconds=10.0))
    first, last = (window for window, _ in longer.analyse(call).segments)
    assert (first.end - first.start, 1.5 < last.end - last.start < 2.5) == (10.0, True)
    shorter = detector.with_options(AnalysisOptions(limits=AudioLimits(max_seconds=5.0)))
    with pytest.raises(AudioError, match="longer than the 5 s limit"):
        shorter.analyse(call)
    with pytest.raises(ValueError, match="window_seconds must be 2-30"):
        AnalysisOptions(window_seconds=1.0)


def test_unusable_audio_is_an_audio_error_saying_why(detector: Detector) -> None:
    with pytest.raises(AudioError, match="audio is empty"):
        detector.analyse(b"")
    with pytest.raises(AudioError, match="send MP3, WAV, FLAC or OGG"):
        detector.analyse(b"not audio at all")
    with pytest.raises(AudioError, match="silent"):
        detector.analyse(encode(np.zeros(16_000, np.float32), 16_000, "WAV"))


def test_votes_of_another_graph_are_refused_at_load(tiny_artifacts: Path, tmp_path: Path) -> None:
    folder = with_foreign_votes(tiny_artifacts, tmp_path / "mixed")
    with pytest.raises(ArtifactsError, match="learned for another graph"):
        Detector.load(folder)
    with pytest.raises(ArtifactsError, match="voicecheck export"):
        Detector.load(tmp_path / "nothing-here")


def test_every_way_in_agrees_with_the_detector(
    detector: Detector, call: Path, client: TestClient, tmp_path: Path
) -> None:
    """The JSON route, the upload route, the stream, scan and evaluate on one clip: one answer."""
    data = call.read_bytes()
    expected = answer(detector, data)

    status, json_route = post(client, payload(data))
    assert (status, json_route) == (200, expected)

    uploaded = client.post(
        "/api/voice-detection/file",
        files={"file": ("call.mp3", data, "audio/mpeg"), "language": (None, LANGUAGE, None)},
        headers={"x-api-key": API_KEY},
    )
    assert (uploaded.status_code, uploaded.json()) == (200, expected)

    samples, rate = load_samples(call)
    with client.websocket_connect("/api/voice-detection/stream", headers={"x-api-key": API_KEY}) as ws:
        ws.send_text(
            json.dumps({"type": "start", "language": LANGUAGE, "sampleRate": rate, "encoding": "pcm_f32le"})
        )
        data_f32 = samples.astype("<f4").tobytes()
        for offset in range(0, len(data_f32), 16_000):  # frames within the stream's frame limit
            ws.send_bytes(data_f32[offset : offset + 16_000])
        ws.send_text(json.dumps({"type": "end"}))
        messages = [ws.receive_json() for _ in range(4)]
    summary = messages[-1]
    assert summary.pop("type") == "summary"
    assert summary == expected

    row = Scanner(detector).row(str(call), FileOptions(LANGUAGE))
    assert (row.pop("file"), row.pop("seconds")) == (str(call), round(detector.analyse(data).seconds, 3))
    assert row == expected

    table = compute_features([Clip(call, "HUMAN", "people", LANGUAGE)], detector.encoder, 5.0)
    [evaluated] = verdicts(table, detector.rules)
    assert evaluated == detector.analyse(data).verdict


def test_the_readme_example_runs(
    tiny_artifacts: Path, call: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    example = example.replace('"artifacts"', repr(str(tiny_artifacts))).replace('"call.mp3"', repr(str(call)))
    exec(compile(example, "README.md", "exec"), {})
    classification, confidence, *_ = capsys.readouterr().out.split()
    assert classification in ("AI_GENERATED", "HUMAN")
    assert 0.5 <= float(confidence) <= 1.0
