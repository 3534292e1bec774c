"""``voicecheck stream FILE``: play an audio file to the stream route in real time (or faster).

A file is sent as its decoded float samples at its own rate (``pcm_f32le``), mixed to mono as the
JSON route mixes it, so the summary equals the JSON route's answer for the same file. It also
times each segment: from sending the frame that holds the window's last sample to
receiving the window's segment message (what ``bench/ways.py`` reports).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import soundfile as sf
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from service.detector.audio import _BLOCK_FRAMES, CONTAINERS, PCM_ENCODINGS, SAMPLE_RATE, decode_audio
from service.detector.errors import AudioError
from service.web.settings import SettingsError, key_file, read_key_file
from service.web.stream import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, ROUTE

SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
CONNECT_SECONDS = 10.0
NOT_AUDIO = "is not audio the service reads: give an MP3, WAV, FLAC or OGG file"


class ClientFailure(Exception):
    """A one-line reason the command cannot go on, and what to do about it."""


@dataclass(frozen=True)
class StreamOptions:
    url: str
    key: str
    language: str = "English"
    speed: float = 1.0  # 1 = real time; 0 = as fast as the connection takes it
    frame_seconds: float = 0.1
    key_in_message: bool = False  # send the key in the start message instead of the header
    encoding: str = "pcm_f32le"  # of the samples given to ``play`` (``load_pcm`` gives pcm_f32le)


@dataclass
class StreamResult:
    segments: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    error: str | None = None
    close_code: int | None = None
    latencies: list[float] = field(default_factory=list)  # seconds, one per segment


def stream_url(given: str | None, env: Mapping[str, str]) -> str:
    """The route's WebSocket URL: ``given`` (ws, wss, http or https, or a bare host:port; the
    route's path added when it has none), else ws://127.0.0.1:$PORT (8000 unless PORT is set)."""
    if given is None:
        port = env.get("PORT") or "8000"
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ClientFailure(f"PORT={port!r} is not a port number: set PORT=1-65535, or pass --url")
        return f"ws://127.0.0.1:{int(port)}{ROUTE}"
    parts = urlsplit(given if "://" in given else f"ws://{given}")
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise ClientFailure(
            f"--url {given[:80]!r} is not a service address: give ws://HOST:PORT or "
            "http://HOST:PORT (wss:// and https:// for TLS), or just HOST:PORT"
        )
    path = parts.path if parts.path not in ("", "/") else ROUTE
    return urlunsplit((SCHEMES[parts.scheme.lower()], parts.netloc, path, parts.query, ""))


def client_key(given: str | None, env: Mapping[str, str]) -> str:
    """--key, else API_KEY, else the key file ``scripts/serve`` writes (API_KEY_FILE or
    ~/.config/voicecheck/api-key)."""
    key = given or env.get("API_KEY", "").strip()
    if key:
        return key
    path = key_file(env)
    if not path.exists():
        raise ClientFailure(
            f"no API key: pass --key, set API_KEY, or start the service with scripts/serve "
            f"(it keeps the key in {path})"
        )
    try:
        key = read_key_file(path)
    except SettingsError as exc:
        raise ClientFailure(str(exc)) from None
    if not key:
        raise ClientFailure(f"the key file {path} is empty: pass --key or set API_KEY")
    return key


def load_samples(path: Path) -> tuple[np.ndarray, int]:
    """The file's decoded mono float32 samples at its own rate, mixed as the JSON route mixes them
    (resampled to 16 kHz, as the JSON route resamples, if the rate is outside 8-48 kHz)."""
    if not path.is_file():
        raise ClientFailure(f"{path} is not a file")
    data = path.read_bytes()
    try:
        with sf.SoundFile(io.BytesIO(data)) as stream:
            if stream.format not in CONTAINERS:
                raise ClientFailure(f"{path} {NOT_AUDIO}")
            rate = stream.samplerate
            if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                # in the service's blocks: libsndfile's MP3 decoder gives slightly different
                # samples after some read boundaries, so the read size is part of the decoding
                blocks = []
                while len(block := stream.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
                    blocks.append(block.mean(axis=1))
                return np.concatenate([*blocks, np.zeros(0, np.float32)]).astype(np.float32), rate
        return decode_audio(data), SAMPLE_RATE
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError):
        raise ClientFailure(f"{path} {NOT_AUDIO}") from None
    except AudioError as exc:
        raise ClientFailure(f"{path}: {exc.message}") from None


def load_pcm(path: Path) -> tuple[bytes, int]:
    """The file as ``pcm_f32le`` bytes at its own rate (see ``load_samples``)."""
    samples, rate = load_samples(path)
    return samples.astype("<f4").tobytes(), rate


async def play(
    pcm: bytes,
    rate: int,
    options: StreamOptions,
    on_message: Callable[[dict[str, Any]], None] = lambda _: None,
) -> StreamResult:
    headers = {} if options.key_in_message else {"x-api-key": options.key}
    start: dict[str, Any] = {"type": "start", "language": options.language, "sampleRate": rate}
    start["encoding"] = options.encoding
    if options.key_in_message:
        start["apiKey"] = options.key
    result = StreamResult()
    sent: list[tuple[int, float]] = []  # (input samples sent so far, when that frame was sent)
    async with await _connect(options.url, headers) as ws:
        receiver = asyncio.create_task(_receive(ws, rate, sent, result, on_message))
        try:
            await ws.send(json.dumps(start))
            await _send_frames(ws, pcm, rate, options, sent, receiver)
        except ConnectionClosed:
            pass  # the server closed first: the receiver has its error message
        await receiver
        result.close_code = ws.close_code
    return result


async def _connect(url: str, headers: dict[str, str]) -> ClientConnection:
    """The open connection, or a ClientFailure that says why not and what to do."""
    try:
        # no pings: the server reads the next frame only once the current window is analysed, so a
        # ping sent far ahead of real time waits behind the frames and would time out the stream
        return await connect(
            url,
            additional_headers=headers,
            compression=None,
            max_size=1 << 20,
            open_timeout=CONNECT_SECONDS,
            ping_interval=None,
        )
    except InvalidURI:
        raise ClientFailure(f"{url} is not a WebSocket URL: pass --url ws://HOST:PORT") from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise ClientFailure(
            f"{url} answered HTTP {status}, not a WebSocket: is this the voicecheck service? "
            f"(the route is {ROUTE})"
        ) from None
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ClientFailure(
            f"cannot connect to {url} ({reason}): is the service running? start it with "
            "scripts/serve, or pass --url (PORT sets the default port)"
        ) from None


async def _send_frames(
    ws: ClientConnection,
    pcm: bytes,
    rate: int,
    options: StreamOptions,
    sent: list[tuple[int, float]],
    receiver: asyncio.Task[None],
) -> None:
    width = PCM_ENCODINGS[options.encoding].itemsize
    step = max(width, int(options.frame_seconds * rate) * width)
    began = time.perf_counter()
    for offset in range(0, len(pcm), step):
        if receiver.done():  # the server closed the stream (an error)
            return
        if options.speed > 0:
            due = began + offset / width / rate / options.speed
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await ws.send(pcm[offset : offset + step])
        sent.append(((offset + step) // width, time.perf_counter()))
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
