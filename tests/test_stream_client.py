"""The stream route on a real uvicorn server, driven by the real client (websockets)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from service.cli.stream_client import ClientFailure, StreamOptions, client_key, load_pcm, play, stream_url
from tests.conftest import API_KEY, encode, payload, speech
from tests.live import ROOT, LiveServer, free_port, live_server

ROUTE = "/api/voice-detection/stream"
FRAME_LIMIT = 8192  # the live server's STREAM_MAX_FRAME_BYTES
CLI_MODULE = "service.cli.main"  # what the voicecheck command runs


@pytest.fixture(scope="module")
def live(tiny_artifacts: Path) -> Iterator[LiveServer]:
    """``voicecheck serve``: the real server, through the command people start."""
    env = {"STREAM_MAX_FRAME_BYTES": str(FRAME_LIMIT)}
    with live_server(tiny_artifacts, API_KEY, command=("-m", CLI_MODULE, "serve"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def server(live: LiveServer) -> str:
    return live.url


def voicecheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``voicecheck ARGS`` in a new process, with API_KEY and PORT unset unless ``env`` sets them."""
    environment = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "API_KEY_FILE", "PORT")}
    command = [sys.executable, "-m", CLI_MODULE, *args]
    return subprocess.run(
        command, cwd=ROOT, env={**environment, **(env or {})}, capture_output=True, text=True, timeout=120
    )


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


def test_stream_command_prints_segments_and_the_summary(server: str, clip_file: Path) -> None:
    done = voicecheck("stream", str(clip_file), "--url", ws_url(server), "--key", API_KEY, "--speed", "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["0.00-", "5.00"]
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["type"] == "summary"
    assert len(summary["segments"]) == 2


def test_stream_command_fails_on_a_wrong_key(server: str, clip_file: Path) -> None:
    done = voicecheck("stream", str(clip_file), "--url", ws_url(server), "--key", "wrong", "--speed", "0")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: missing or invalid API key (x-api-key header, or apiKey in the start message)"
    ]


def test_real_client_gets_the_json_routes_answer_for_an_mp3(server: str, tmp_path: Path) -> None:
    """Issue #20: the command sends a file's decoded samples, so the answers are equal, not close."""
    path = tmp_path / "call.mp3"
    path.write_bytes(encode(speech(17.0, seed=4), 44_100, "MP3"))  # a 6.2 s MP3 at 44.1 kHz
    pcm, rate = load_pcm(path)
    result = asyncio.run(play(pcm, rate, StreamOptions(ws_url(server), API_KEY, speed=0, frame_seconds=0.02)))
    answer = httpx.post(
        f"{server}/api/voice-detection",
        json=payload(path.read_bytes()),
        headers={"x-api-key": API_KEY},
        timeout=30,
    ).json()
    assert result.summary is not None, result.error
    assert {k: v for k, v in result.summary.items() if k != "type"} == answer


def test_invalid_utf8_text_closes_1007_without_a_traceback(live: LiveServer) -> None:
    """Issue #19, defects 5 and 15: once a traceback in the server's log."""

    async def send_invalid() -> int | None:
        async with connect(ws_url(live.url), additional_headers={"x-api-key": API_KEY}) as ws:
            await ws.send(b"\xff\xfe{", text=True)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    before = len(live.log())
    assert asyncio.run(send_invalid()) == 1007
    log = live.log()[before:]
    assert "Traceback" not in log
    assert "voicecheck.error" not in log
    assert '"close_code": 1007' in log


def test_compressed_frames_cannot_be_negotiated_and_big_frames_are_refused_unread(live: LiveServer) -> None:
    """Issue #19, defect 3: the server offers no per-message deflate (a frame of a few KB could
    inflate to megabytes before any check), and a frame over STREAM_MAX_FRAME_BYTES is refused by
    its header, 1009, before its payload is buffered."""

    async def oversized() -> tuple[str | None, int | None]:
        headers = {"x-api-key": API_KEY}
        async with connect(ws_url(live.url), additional_headers=headers, compression="deflate") as ws:
            assert ws.response is not None
            extensions = ws.response.headers.get("sec-websocket-extensions")
            await ws.send(
                json.dumps(
                    {"type": "start", "language": "English", "sampleRate": 16000, "encoding": "pcm_s16le"}
                )
            )
            await ws.send(bytes(FRAME_LIMIT + 2))
            with pytest.raises(ConnectionClosed):
                await ws.recv()  # the server sends nothing before it closes
            return extensions, ws.close_code

    assert asyncio.run(oversized()) == (None, 1009)


def test_stream_command_needs_no_flags_against_the_service_scripts_serve_starts(
    live: LiveServer, clip_file: Path, tmp_path: Path
) -> None:
    """Issue #20: the key from the file scripts/serve writes, the URL from PORT."""
    key_file = tmp_path / "config" / "voicecheck" / "api-key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "PORT": str(live.port)}
    done = voicecheck("stream", str(clip_file), "--speed", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert '"type": "summary"' in done.stdout


@pytest.mark.parametrize("form", ["http://127.0.0.1:{port}", "127.0.0.1:{port}", "http://127.0.0.1:{port}/"])
def test_stream_command_takes_http_urls_and_bare_addresses(
    live: LiveServer, clip_file: Path, form: str
) -> None:
    url = form.format(port=live.port)
    done = voicecheck("stream", str(clip_file), "--url", url, "--key", API_KEY, "--speed", "0")
    assert done.returncode == 0, done.stderr


def test_stream_command_says_in_one_line_that_nothing_listens(clip_file: Path) -> None:
    """Issue #19: once a 40-line traceback."""
    done = voicecheck("stream", str(clip_file), "--url", f"127.0.0.1:{free_port()}", "--key", "k")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert "cannot connect" in done.stderr
    assert "scripts/serve" in done.stderr


def test_stream_command_says_in_one_line_that_a_url_is_not_the_service(server: str, clip_file: Path) -> None:
    done = voicecheck("stream", str(clip_file), "--url", f"{server}/health", "--key", API_KEY)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"voicecheck stream: ws{server[4:]}/health answered HTTP 403, not a WebSocket: is this the "
        f"voicecheck service? (the route is {ROUTE})"
    ]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            b"ID3" + bytes(range(256)) * 40,
            "is not audio the service reads: give an MP3, WAV, FLAC or OGG file",
        ),
        (b"hello, not audio\n", "is not audio the service reads: give an MP3, WAV, FLAC or OGG file"),
    ],
)
def test_stream_command_on_a_file_that_is_not_audio(tmp_path: Path, content: bytes, words: str) -> None:
    """Issue #20: one true line, none of libmpg123's notes (once "File does not exist")."""
    path = tmp_path / "song.mp3"
    path.write_bytes(content)
    done = voicecheck("stream", str(path), "--key", "k")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [f"voicecheck stream: {path} {words}"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--url", "ftp://host/x", "--key", "k"], "is not a service address"),
        (["--key", "k", "--speed", "-1"], "--speed must be >= 0"),
        (["--key", "k", "--frame-ms", "900"], "--frame-ms 1-500"),
        ([], "no API key: pass --key, set API_KEY, or start the service with scripts/serve"),
    ],
)
def test_stream_command_bad_arguments_are_one_line_and_exit_2(
    clip_file: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    done = voicecheck("stream", str(clip_file), *args, env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert words in done.stderr


def test_stream_url_and_key_defaults(tmp_path: Path) -> None:
    assert stream_url(None, {}) == f"ws://127.0.0.1:8000{ROUTE}"
    assert stream_url(None, {"PORT": "9001"}) == f"ws://127.0.0.1:9001{ROUTE}"
    assert stream_url("https://example.org", {}) == f"wss://example.org{ROUTE}"
    assert stream_url("ws://h:1/other", {}) == "ws://h:1/other"
    with pytest.raises(ClientFailure, match="PORT='x' is not a port number"):
        stream_url(None, {"PORT": "x"})
    assert client_key("given", {"API_KEY": "env"}) == "given"
    assert client_key(None, {"API_KEY": "env"}) == "env"
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    key_file.chmod(0o644)
    with pytest.raises(ClientFailure, match="readable by others"):
        client_key(None, {"API_KEY_FILE": str(key_file)})
    key_file.chmod(0o600)
    assert client_key(None, {"API_KEY_FILE": str(key_file)}) == "from-file"
