from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from service.cli.stream_client import load_samples
from service.detector.windows import WindowAssembler, analysis_windows
from service.web.settings import Settings, SettingsError
from tests.conftest import API_KEY, encode, make_client, payload, post, serving, speech

ROUTE = "/api/voice-detection/stream"
HEADERS = {"x-api-key": API_KEY}


def pcm(waveform: np.ndarray) -> bytes:
    samples: np.ndarray = np.round(np.clip(waveform, -1, 1 - 1 / 32768) * 32768).astype("<i2")
    return samples.tobytes()


def start(rate: object = 16_000, **extra: object) -> str:
    return json.dumps(
        {"type": "start", "language": "English", "sampleRate": rate, "encoding": "pcm_s16le", **extra}
    )


def frames(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def expect_close(ws: Any, code: int, words: str) -> None:
    message = ws.receive_json()
    assert message["type"] == "error", message
    assert set(message) == {"type", "message"}
    assert words in message["message"]
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == code


def json_answer(client: TestClient, clip: np.ndarray, rate: int) -> dict[str, object]:
    """The JSON route's answer for a WAV of exactly the samples ``pcm(clip)`` streams."""
    samples = np.frombuffer(pcm(clip), dtype="<i2")
    status, body = post(client, payload(encode(samples, rate, "WAV", "PCM_16"), fmt="wav"))
    assert status == 200, body
    return body


def test_a_12_s_stream_gets_segments_as_it_goes_and_the_json_routes_answer(client: TestClient) -> None:
    clip = speech(12.0, seed=5)
    data = pcm(clip)
    half_second = 16_000
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(start())
        for frame in frames(data[: 6 * 2 * 16_000], half_second):  # 6 s: the first window is complete
            ws.send_bytes(frame)
        first = ws.receive_json()  # arrives before the rest is sent
        assert first["type"] == "segment"
        assert (first["start"], first["end"]) == (0.0, 5.0)
        assert first["classification"] in ("AI_GENERATED", "HUMAN")
        assert 0.0 <= first["score"] <= 1.0
        assert len(first["votes"]) == 5
        for frame in frames(data[6 * 2 * 16_000 :], half_second):
            ws.send_bytes(frame)
        second = ws.receive_json()
        assert (second["type"], second["start"], second["end"]) == ("segment", 5.0, 10.0)
        ws.send_text(json.dumps({"type": "end"}))
        last = ws.receive_json()
        assert (last["type"], last["start"], last["end"]) == ("segment", 10.0, 12.0)
        summary = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1000
    assert summary.pop("type") == "summary"
    answer = json_answer(client, clip, 16_000)
    assert summary == answer
    segments = answer["segments"]
    assert isinstance(segments, list)
    assert [s["score"] for s in segments] == [m["score"] for m in (first, second, last)]


@pytest.mark.parametrize("rate", [8_000, 44_100])
def test_other_sample_rates_are_resampled_like_the_json_route(client: TestClient, rate: int) -> None:
    clip = speech(7.0, seed=8)
    clip = np.interp(np.arange(7 * rate) / rate, np.arange(len(clip)) / 16_000, clip).astype(np.float32)
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(start(rate))
        for frame in frames(pcm(clip), 3_333):  # odd sizes: samples split across frames
            ws.send_bytes(frame)
        ws.send_text(json.dumps({"type": "end"}))
        messages = [ws.receive_json() for _ in range(3)]
    assert [m["type"] for m in messages] == ["segment", "segment", "summary"]
    summary = messages[-1]
    del summary["type"]
    assert summary == json_answer(client, clip, rate)


def test_key_in_the_start_message_for_clients_without_headers(client: TestClient) -> None:
    with client.websocket_connect(ROUTE) as ws:
        ws.send_text(start(apiKey=API_KEY))
        ws.send_bytes(pcm(speech(2.0)))
        ws.send_text(json.dumps({"type": "end"}))
        messages = [ws.receive_json(), ws.receive_json()]
    assert [m["type"] for m in messages] == ["segment", "summary"]
    assert "segments" not in messages[1]


@pytest.mark.parametrize(
    ("headers", "extra"),
    [({}, {}), ({}, {"apiKey": "wrong"}), ({"x-api-key": "wrong"}, {"apiKey": API_KEY})],
)
def test_wrong_or_missing_key_is_refused(
    client: TestClient, headers: dict[str, str], extra: dict[str, str]
) -> None:
    with client.websocket_connect(ROUTE, headers=headers) as ws:
        if "x-api-key" not in headers:
            ws.send_text(start(**extra))
        expect_close(ws, 1008, "API key")


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("not json", "JSON objects"),
        ("[1, 2]", "JSON objects"),
        (json.dumps({"type": "end"}), '"type": "start"'),
        (start(7_999), "8000-48000"),
        (start("16000"), "8000-48000"),
        (start(True), "8000-48000"),
        (start(encoding="opus"), "pcm_s16le"),
        (start(colour="red"), "unknown field 'colour'"),
        (
            json.dumps(
                {"type": "start", "language": "Klingon", "sampleRate": 16000, "encoding": "pcm_s16le"}
            ),
            "allowed: Tamil",
        ),
        (json.dumps({"type": "start", "sampleRate": 16000, "encoding": "pcm_s16le"}), "'language'"),
    ],
)
def test_bad_start_messages_are_refused(client: TestClient, message: str, words: str) -> None:
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(message)
        expect_close(ws, 1003, words)


def test_audio_before_start_is_refused(client: TestClient) -> None:
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_bytes(b"\x00\x00" * 100)
        expect_close(ws, 1003, '"type": "start"')


def test_unknown_message_after_start_is_refused(client: TestClient) -> None:
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(start())
        ws.send_text(json.dumps({"type": "pause"}))
        expect_close(ws, 1003, "binary PCM frames")


def test_oversize_frame_is_refused(settings: Settings) -> None:
    with (
        make_client(settings, stream_max_frame_bytes=4096) as small,
        small.websocket_connect(ROUTE, headers=HEADERS) as ws,
    ):
        ws.send_text(start())
        ws.send_bytes(b"\x00" * 4096)
        ws.send_bytes(b"\x00" * 4097)
        expect_close(ws, 1009, "4096 bytes")


@pytest.mark.parametrize("send_start", [False, True])
def test_idle_stream_is_closed(settings: Settings, send_start: bool) -> None:
    with (
        make_client(settings, stream_idle_seconds=0.3) as strict,
        strict.websocket_connect(ROUTE, headers=HEADERS) as ws,
    ):
        began = time.monotonic()
        if send_start:
            ws.send_text(start())
            ws.send_bytes(pcm(speech(1.0)))
        expect_close(ws, 1008, "no message for 0.3 s")
        assert time.monotonic() - began < 5


def test_stream_longer_than_the_limit_is_closed(settings: Settings) -> None:
    with (
        make_client(settings, stream_max_seconds=5.0) as strict,
        strict.websocket_connect(ROUTE, headers=HEADERS) as ws,
    ):
        ws.send_text(start())
        for frame in frames(pcm(speech(6.0)), 32_000):
            ws.send_bytes(frame)
        assert ws.receive_json()["type"] == "segment"  # the first 5 s window
        expect_close(ws, 1008, "5 s limit")


@pytest.mark.parametrize(
    ("audio", "words"),
    [
        (np.zeros(16_000 * 2, dtype=np.float32), "audio is silent"),
        (np.full(16_000 * 2, 0.3, dtype=np.float32), "audio is silent"),  # a DC offset, no sound
        (speech(0.3), "at least 0.5 s"),
    ],
)
def test_unusable_stream_gets_the_json_routes_error(
    client: TestClient, audio: np.ndarray, words: str
) -> None:
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(start())
        ws.send_bytes(pcm(audio))
        ws.send_text(json.dumps({"type": "end"}))
        expect_close(ws, 1003, words)
    status, body = post(client, payload(encode(audio, 16_000, "WAV", "PCM_16"), fmt="wav"))
    assert status == 400
    assert words in str(body["message"])


def test_nine_trickling_streams_leave_the_json_route_free(settings: Settings) -> None:
    """Issue #19, defect 6: streams that trickle audio hold no inference place (default limits)."""
    with serving(settings) as (app, runtime), contextlib.ExitStack() as streams:
        for _ in range(9):
            ws = streams.enter_context(app.websocket_connect(ROUTE, headers=HEADERS))
            ws.send_text(start())
            ws.send_bytes(b"\x00\x01")
        time.sleep(0.5)  # the nine are admitted and waiting for their next frame
        began = time.monotonic()
        status, body = post(app, payload(encode(speech(2.0), 16_000, "WAV")))
        assert (status, time.monotonic() - began < 10) == (200, True), body
        assert runtime.limiter.pending == 0


def test_a_window_takes_an_inference_place_only_while_it_is_analysed(settings: Settings) -> None:
    with (
        serving(settings, max_concurrent=1, max_queue=0) as (app, runtime),
        app.websocket_connect(ROUTE, headers=HEADERS) as ws,
    ):
        ws.send_text(start())
        for frame in frames(pcm(speech(5.5)), 32_000):
            ws.send_bytes(frame)
        assert ws.receive_json()["type"] == "segment"  # analysed, and its place given back
        assert runtime.limiter.pending == 0
        status, _ = post(app, payload(encode(speech(2.0), 16_000, "WAV")))
        assert status == 200
        ws.send_text(json.dumps({"type": "end"}))
        assert [ws.receive_json()["type"] for _ in range(2)] == ["segment", "summary"]


def test_streams_beyond_stream_max_open_are_told_to_retry(settings: Settings) -> None:
    with (
        serving(settings, stream_max_open=2) as (app, runtime),
        app.websocket_connect(ROUTE, headers=HEADERS) as first,
        app.websocket_connect(ROUTE, headers=HEADERS) as second,
    ):
        for ws in (first, second):
            ws.send_text(start())
        with app.websocket_connect(ROUTE, headers=HEADERS) as third:
            expect_close(third, 1013, "2 streams are open")
        assert runtime.metrics.streams_active == 2


def test_stream_max_open_must_leave_connections_for_http() -> None:
    assert Settings.from_env({"API_KEY": "k", "STREAM_MAX_OPEN": "3"}).stream_max_open == 3
    assert Settings.from_env({"API_KEY": "k"}).stream_max_open == 16
    assert Settings.from_env({"API_KEY": "k", "MAX_CONNECTIONS": "10"}).stream_max_open == 5
    with pytest.raises(SettingsError, match="STREAM_MAX_OPEN must be below MAX_CONNECTIONS"):
        Settings.from_env({"API_KEY": "k", "STREAM_MAX_OPEN": "64", "MAX_CONNECTIONS": "64"})


def test_a_lone_surrogate_key_is_a_wrong_key_not_a_bug(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #19, defects 4 and 15: once 1011 and a UnicodeEncodeError in the log."""
    with client.websocket_connect(ROUTE) as ws:
        ws.send_text(start(apiKey="\ud800"))
        expect_close(ws, 1008, "API key")
    assert not [r for r in caplog.records if r.name == "voicecheck.error"]


def test_streams_are_logged_and_counted_like_requests(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voicecheck.access")
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(start())
        for frame in frames(pcm(speech(6.0)), 32_000):
            ws.send_bytes(frame)
        ws.send_text(json.dumps({"type": "end"}))
        assert [ws.receive_json()["type"] for _ in range(3)] == ["segment", "segment", "summary"]
    with client.websocket_connect(ROUTE) as ws:
        ws.send_text(start(apiKey="wrong"))
        expect_close(ws, 1008, "API key")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "voicecheck.access"]
    streams = [line for line in lines if line["route"] == ROUTE]
    assert [(s["close_code"], s["segments"], s["audio_seconds"]) for s in streams] == [
        (1000, 2, 6.0),
        (1008, 0, 0.0),
    ]
    assert all(s["method"] == "WEBSOCKET" and s["ms"] >= 0 and len(s["request_id"]) == 16 for s in streams)
    assert "wrong" not in caplog.text
    metrics = client.get("/metrics").text
    for series in (
        "voicecheck_streams_opened_total 2",
        "voicecheck_streams_active 0",
        'voicecheck_streams_closed_total{code="1000"} 1',
        'voicecheck_streams_closed_total{code="1008"} 1',
        "voicecheck_stream_segments_total 2",
    ):
        assert series in metrics.splitlines(), series


def test_float_samples_give_the_json_routes_answer_for_a_float_file(
    client: TestClient, tmp_path: Path
) -> None:
    """pcm_f32le carries a file's decoded samples exactly: an MP3 streamed as the samples the
    client decodes gets the JSON route's answer for the MP3 itself (16-bit PCM would round them)."""
    mp3 = encode(speech(10.0, seed=9), 22_050, "MP3")  # 7.3 s at 22.05 kHz
    (tmp_path / "call.mp3").write_bytes(mp3)
    samples, rate = load_samples(tmp_path / "call.mp3")
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(start(rate, encoding="pcm_f32le"))
        for frame in frames(samples.astype("<f4").tobytes(), 4_001):  # samples split across frames
            ws.send_bytes(frame)
        ws.send_text(json.dumps({"type": "end"}))
        summary = [ws.receive_json() for _ in range(3)][-1]
    assert summary.pop("type") == "summary"
    status, answer = post(client, payload(mp3))
    assert (status, summary) == (200, answer)


@pytest.mark.parametrize("value", [float("nan"), 40.0])
def test_float_samples_beyond_full_scale_are_corrupt(client: TestClient, value: float) -> None:
    samples = speech(2.0).astype("<f4")
    samples[100] = value
    with client.websocket_connect(ROUTE, headers=HEADERS) as ws:
        ws.send_text(start(encoding="pcm_f32le"))
        ws.send_bytes(samples.tobytes())
        expect_close(ws, 1003, "audio is corrupt")


def test_not_ready_stream_is_told_to_retry(settings: Settings) -> None:
    with serving(settings) as (app, runtime):
        runtime.ready = False
        with app.websocket_connect(ROUTE, headers=HEADERS) as ws:
            expect_close(ws, 1013, "not ready")


def test_assembler_is_the_same_whatever_the_frame_sizes() -> None:
    data = pcm(speech(11.3, seed=2))
    whole = WindowAssembler(16_000, 5.0)
    pieces = whole.feed(data)
    tail, total = whole.finish()
    split = WindowAssembler(16_000, 5.0)
    split_pieces = [p for frame in frames(data, 777) for p in split.feed(frame)]
    split_tail, split_total = split.finish()
    assert total == split_total == len(data) // 2
    assert [s for s, _ in pieces + tail] == [s for s, _ in split_pieces + split_tail] == [0, 80_000, 160_000]
    for (_, a), (_, b) in zip(pieces + tail, split_pieces + split_tail, strict=True):
        np.testing.assert_array_equal(a, b)


def test_stream_settings_come_from_the_environment() -> None:
    env = {
        "API_KEY": "k",
        "STREAM_MAX_SECONDS": "60",
        "STREAM_IDLE_SECONDS": "2.5",
        "STREAM_MAX_FRAME_BYTES": "4096",
    }
    settings = Settings.from_env(env)
    assert (settings.stream_max_seconds, settings.stream_idle_seconds, settings.stream_max_frame_bytes) == (
        60.0,
        2.5,
        4096,
    )
    with pytest.raises(SettingsError, match="STREAM_MAX_FRAME_BYTES=100 is out of range"):
        Settings.from_env({"API_KEY": "k", "STREAM_MAX_FRAME_BYTES": "100"})


@pytest.mark.parametrize("seconds", [0.6, 5.0, 5.3, 5.5, 10.0, 10.49, 12.0])
def test_assembler_ends_with_the_files_windows(seconds: float) -> None:
    samples = int(seconds * 16_000)
    assembler = WindowAssembler(16_000, 5.0)
    pieces = [
        p for frame in frames(pcm(speech(seconds))[: 2 * samples], 3_200) for p in assembler.feed(frame)
    ]
    tail, total = assembler.finish()
    got = [(start, start + len(piece)) for start, piece in pieces + tail]
    assert total == samples
    assert got == analysis_windows(samples, 5.0)
