"""The stream route on a real uvicorn server, driven by the real client (websockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.cli import main
from service.stream_client import StreamOptions, load_pcm, play
from tests.conftest import API_KEY, encode, payload, speech
from tests.live import live_server


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path) -> Iterator[str]:
    """``voicecheck serve``: the real server, through the command people start."""
    with live_server(tiny_artifacts, API_KEY, command=("-m", "service.cli", "serve")) as running:
        yield running.url


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.wav"
    samples = np.round(speech(7.0, seed=6) * 32767).astype(np.int16)
    path.write_bytes(encode(samples, 16_000, "WAV", "PCM_16"))
    return path


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/api/voice-detection/stream"


def test_real_client_gets_segments_and_the_json_routes_answer(server: str, clip_file: Path) -> None:
    pcm, rate = load_pcm(clip_file)
    result = asyncio.run(play(pcm, rate, StreamOptions(ws_url(server), API_KEY, speed=0, frame_seconds=0.05)))
    assert result.error is None
    assert result.close_code == 1000
    assert [(s["start"], s["end"]) for s in result.segments] == [(0.0, 5.0), (5.0, 7.0)]
    assert len(result.latencies) == 2
    assert all(0 <= latency < 10 for latency in result.latencies)
    answer = httpx.post(
        f"{server}/api/voice-detection",
        json=payload(clip_file.read_bytes(), fmt="wav"),
        headers={"x-api-key": API_KEY},
        timeout=30,
    ).json()
    assert result.summary is not None
    assert {k: v for k, v in result.summary.items() if k != "type"} == answer


def test_real_client_with_the_key_in_the_start_message(server: str, clip_file: Path) -> None:
    pcm, rate = load_pcm(clip_file)
    options = StreamOptions(ws_url(server), API_KEY, speed=0, key_in_message=True)
    result = asyncio.run(play(pcm, rate, options))
    assert result.summary is not None


def test_real_client_with_a_wrong_key_is_closed_1008(server: str, clip_file: Path) -> None:
    pcm, rate = load_pcm(clip_file)
    result = asyncio.run(play(pcm, rate, StreamOptions(ws_url(server), "wrong", speed=0)))
    assert result.summary is None
    assert result.error is not None
    assert "API key" in result.error
    assert result.close_code == 1008


def test_stream_command_prints_segments_and_the_summary(
    server: str, clip_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stream", str(clip_file), "--url", ws_url(server), "--key", API_KEY, "--speed", "0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split()[:2] == ["0.00-", "5.00"]
    summary = json.loads(printed[printed.index("{") :])
    assert summary["type"] == "summary"
    assert len(summary["segments"]) == 2


def test_stream_command_fails_on_a_wrong_key(
    server: str, clip_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stream", str(clip_file), "--url", ws_url(server), "--key", "wrong", "--speed", "0"]
    assert main(argv) == 1
    assert "API key" in capsys.readouterr().err
