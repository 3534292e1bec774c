"""``voicecheck stream FILE``: play an audio file to the stream route in real time (or faster).

It also times each segment: from sending the frame that holds the window's last sample to
receiving the window's segment message (what ``bench/ways.py`` reports).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from service.audio import SAMPLE_RATE, decode_audio
from service.stream import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE


@dataclass(frozen=True)
class StreamOptions:
    url: str
    key: str
    language: str = "English"
    speed: float = 1.0  # 1 = real time; 0 = as fast as the connection takes it
    frame_seconds: float = 0.1
    key_in_message: bool = False  # send the key in the start message instead of the header


@dataclass
class StreamResult:
    segments: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    error: str | None = None
    close_code: int | None = None
    latencies: list[float] = field(default_factory=list)  # seconds, one per segment


def load_pcm(path: Path) -> tuple[bytes, int]:
    """The file as mono 16-bit PCM at its own rate (resampled to 16 kHz if outside 8-48 kHz)."""
    info = sf.info(str(path))
    if MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
        mono = samples.mean(axis=1).round().astype("<i2")
        return mono.tobytes(), int(rate)
    waveform = decode_audio(path.read_bytes())
    return np.round(np.clip(waveform, -1, 32767 / 32768) * 32768).astype("<i2").tobytes(), SAMPLE_RATE


async def play(
    pcm: bytes,
    rate: int,
    options: StreamOptions,
    on_message: Callable[[dict[str, Any]], None] = lambda _: None,
) -> StreamResult:
    headers = {} if options.key_in_message else {"x-api-key": options.key}
    start: dict[str, Any] = {"type": "start", "language": options.language, "sampleRate": rate}
    start["encoding"] = "pcm_s16le"
    if options.key_in_message:
        start["apiKey"] = options.key
    result = StreamResult()
    sent: list[tuple[int, float]] = []  # (input samples sent so far, when that frame was sent)
    async with connect(options.url, additional_headers=headers, compression=None, max_size=1 << 20) as ws:
        receiver = asyncio.create_task(_receive(ws, rate, sent, result, on_message))
        try:
            await ws.send(json.dumps(start))
            await _send_frames(ws, pcm, rate, options, sent, receiver)
        except ConnectionClosed:
            pass  # the server closed first: the receiver has its error message
        await receiver
        result.close_code = ws.close_code
    return result


async def _send_frames(
    ws: ClientConnection,
    pcm: bytes,
    rate: int,
    options: StreamOptions,
    sent: list[tuple[int, float]],
    receiver: asyncio.Task[None],
) -> None:
    step = max(2, int(options.frame_seconds * rate) * 2)
    began = time.perf_counter()
    for offset in range(0, len(pcm), step):
        if receiver.done():  # the server closed the stream (an error)
            return
        if options.speed > 0:
            due = began + offset / 2 / rate / options.speed
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await ws.send(pcm[offset : offset + step])
        sent.append(((offset + step) // 2, time.perf_counter()))
    await ws.send(json.dumps({"type": "end"}))


async def _receive(
    ws: ClientConnection,
    rate: int,
    sent: list[tuple[int, float]],
    result: StreamResult,
    on_message: Callable[[dict[str, Any]], None],
) -> None:
    try:
        async for raw in ws:
            arrived, message = time.perf_counter(), json.loads(raw)
            _record(message, arrived, rate, sent, result)
            on_message(message)
    except ConnectionClosed:
        pass  # closed with an error code; the error message came first


def _record(
    message: dict[str, Any], arrived: float, rate: int, sent: list[tuple[int, float]], result: StreamResult
) -> None:
    if message["type"] == "segment":
        result.segments.append(message)
        last_sample = round(message["end"] * rate)
        sent_at = next((t for count, t in sent if count >= last_sample), None)
        if sent_at is not None:
            result.latencies.append(arrived - sent_at)
    elif message["type"] == "summary":
        result.summary = message
    elif message["type"] == "error":
        result.error = message["message"]
