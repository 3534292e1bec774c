"""WebSocket ``/api/voice-detection/stream``: per-window verdicts for a live call.

Protocol: a text ``{"type": "start", "language", "sampleRate", "encoding"}`` (plus ``"apiKey"``
when the ``x-api-key`` header cannot be set), binary frames of mono PCM (``pcm_s16le``, or
``pcm_f32le``: a file's decoded samples, exactly what the JSON route analyses), a text
``{"type": "end"}``. Each analysis window is resampled to 16 kHz, analysed the moment its last
sample arrives and dropped; the server sends a ``segment`` message for it. On ``end`` it sends a
``summary`` with the JSON route's fields, computed from the kept window features with the same
fixed-length windows (``detector.analysis_windows``), so it equals the JSON route's answer for the
same audio. Errors: ``{"type": "error", "message"}``, then a close with a fitting code.

A stream takes a place of the inference limiter only while one of its windows is analysed, so a
slow or idle producer holds nothing the JSON route needs; STREAM_MAX_OPEN bounds the open streams.
Each stream ends with one access-log line and its /metrics series.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from service.detector.audio import PCM_ENCODINGS, SAMPLE_RATE, check_audible
from service.detector.errors import AudioError
from service.detector.windows import Window
from service.web.contract import canonical_language, check_api_key, success_body
from service.web.errors import ClientError
from service.web.middleware import access_log, log_bug, new_request_id
from service.web.runtime import Runtime
from service.web.settings import Settings

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 48_000
START_FIELDS = ("type", "language", "sampleRate", "encoding", "apiKey")
MAX_TEXT_BYTES = 4096
WALL_TIME_FACTOR = 2.0  # a stream may take twice its audio's length in wall time (queueing, jitter)

NORMAL, POLICY, UNSUPPORTED, TOO_BIG, INTERNAL, TRY_AGAIN = 1000, 1008, 1003, 1009, 1011, 1013
# sent by the server's WebSocket layer (service/web/server.py, uvicorn, websockets)
PROTOCOL_ERROR, INVALID_TEXT, RESTARTING = 1002, 1007, 1012
SERVER_CODES = (
    NORMAL,
    PROTOCOL_ERROR,
    UNSUPPORTED,
    INVALID_TEXT,
    POLICY,
    TOO_BIG,
    INTERNAL,
    RESTARTING,
    TRY_AGAIN,
)
KEY_PLACES = "x-api-key header, or apiKey in the start message"
ROUTE = "/api/voice-detection/stream"
CLOSE_FOR_STATUS = {400: UNSUPPORTED, 401: POLICY, 413: TOO_BIG, 429: TRY_AGAIN, 503: TRY_AGAIN}


class StreamError(ClientError):
    """A protocol or limit violation, closed with ``close_code``."""

    def __init__(self, message: str, close_code: int) -> None:
        super().__init__(message)
        self.close_code = close_code


@dataclass(frozen=True)
class StreamLimits:
    max_seconds: float
    idle_seconds: float
    max_frame_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        return cls(settings.stream_max_seconds, settings.stream_idle_seconds, settings.stream_max_frame_bytes)


@dataclass(frozen=True)
class StreamStart:
    language: str
    sample_rate: int
    api_key: str | None
    encoding: str = "pcm_s16le"


@dataclass
class StreamRecord:
    """What the access log and /metrics say about a stream: never what it sent."""

    request_id: str = field(default_factory=new_request_id)
    close_code: int | str = "disconnect"  # the client went away without a close code we document
    segments: int = 0
    audio_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def log_line(self) -> str:
        line = {
            "request_id": self.request_id,
            "method": "WEBSOCKET",
            "route": ROUTE,
            "close_code": self.close_code,
            "segments": self.segments,
            "audio_seconds": round(self.audio_seconds, 2),
            "ms": round((time.perf_counter() - self.started) * 1000, 1),
        }
        return json.dumps(line)


async def stream_voice(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.state.runtime
    record = StreamRecord()
    runtime.metrics.stream_opened()
    try:
        await websocket.accept()
        record.close_code = await _answer(websocket, runtime, record)
    finally:
        runtime.metrics.stream_closed(str(record.close_code))
        access_log.info(record.log_line())


async def _answer(websocket: WebSocket, runtime: Runtime, record: StreamRecord) -> int | str:
    """Serves the stream; the close code it ended with."""
    try:
        await _serve(websocket, runtime, record)
        return NORMAL
    except WebSocketDisconnect as exc:
        return exc.code if exc.code in SERVER_CODES else "disconnect"
    except StreamError as exc:
        return await _close(websocket, exc.message, exc.close_code)
    except ClientError as exc:
        return await _close(websocket, exc.message, CLOSE_FOR_STATUS.get(exc.status_code, UNSUPPORTED))
    except AudioError as exc:
        return await _close(websocket, exc.message, UNSUPPORTED)
    except Exception as exc:  # a bug: say so in the protocol's shape, log where, never what
        log_bug(exc, route="stream", request_id=record.request_id)
        return await _close(websocket, "internal error; the stream was not processed", INTERNAL)


async def _serve(websocket: WebSocket, runtime: Runtime, record: StreamRecord) -> None:
    settings, limits = runtime.settings, StreamLimits.from_settings(runtime.settings)
    if not runtime.ready:
        raise StreamError("the service is not ready; retry shortly", TRY_AGAIN)
    if runtime.metrics.streams_active > settings.stream_max_open:
        raise StreamError(
            f"{settings.stream_max_open} streams are open, the limit; retry in a few seconds", TRY_AGAIN
        )
    header_key = websocket.headers.get("x-api-key")
    if header_key is not None:
        check_api_key(header_key, settings.api_key, KEY_PLACES)
    start = parse_start(await _receive_text(websocket, limits), settings.languages)
    check_api_key(header_key if header_key is not None else start.api_key, settings.api_key, KEY_PLACES)
    runtime.rate_limit.take(settings.api_key)
    wall_seconds = limits.max_seconds * WALL_TIME_FACTOR
    try:
        with anyio.fail_after(wall_seconds):
            summary = await _run(websocket, runtime, start, limits, record)
    except TimeoutError:
        raise StreamError(f"the stream took longer than {wall_seconds:g} s", POLICY) from None
    await websocket.send_json(summary)
    await websocket.close(NORMAL)


async def _run(
    websocket: WebSocket, runtime: Runtime, start: StreamStart, limits: StreamLimits, record: StreamRecord
) -> dict[str, Any]:
    assembler = runtime.detector.assembler(start.sample_rate, start.encoding)
    windows: list[Window] = []
    while (frame := await _receive_frame(websocket, limits)) is not None:
        pieces = assembler.feed(frame)
        record.audio_seconds = assembler.input_seconds
        if assembler.input_seconds > limits.max_seconds:
            raise StreamError(f"the stream is longer than the {limits.max_seconds:g} s limit", POLICY)
        await _analyse(websocket, runtime, pieces, windows, record)
    pieces, total = assembler.finish()
    check_audible(total / SAMPLE_RATE, assembler.swing, runtime.limits)
    await _analyse(websocket, runtime, pieces, windows, record)
    return {
        "type": "summary",
        **success_body(start.language, runtime.detector.conclude(windows, total), runtime.weights),
    }


async def _analyse(
    websocket: WebSocket,
    runtime: Runtime,
    pieces: list[tuple[int, np.ndarray]],
    windows: list[Window],
    record: StreamRecord,
) -> None:
    """Each window takes a place of the inference limiter (as a request does) only while analysed."""
    for start, piece in pieces:
        async with runtime.limiter.admit(), runtime.limiter.slot():
            window = await run_in_threadpool(runtime.analyse_window, piece, start)
        windows.append(window)
        await websocket.send_json(segment_message(runtime, window))
        record.segments += 1
        runtime.metrics.stream_segment()


def segment_message(runtime: Runtime, window: Window) -> dict[str, Any]:
    verdict = runtime.rules.decide(window.features)
    return {
        "type": "segment",
        "start": round(window.start, 2),
        "end": round(window.end, 2),
        "classification": verdict.classification,
        "score": round(verdict.confidence, 4),
        "votes": [vote.as_dict() for vote in verdict.votes],
    }


def parse_start(text: str, languages: tuple[str, ...]) -> StreamStart:
    message = _json_object(text)
    if message.get("type") != "start":
        raise StreamError('the first message must be {"type": "start", ...}', UNSUPPORTED)
    unknown = sorted(set(message) - set(START_FIELDS))
    if unknown:
        raise StreamError(
            f"unknown field {unknown[0][:40]!r}; allowed: {', '.join(START_FIELDS)}", UNSUPPORTED
        )
    language = message.get("language")
    if not isinstance(language, str):
        raise StreamError("field 'language' must be a string", UNSUPPORTED)
    encoding = message.get("encoding")
    if not isinstance(encoding, str) or encoding not in PCM_ENCODINGS:
        raise StreamError(f"field 'encoding' must be one of: {', '.join(PCM_ENCODINGS)}", UNSUPPORTED)
    key = message.get("apiKey")
    if key is not None and not isinstance(key, str):
        raise StreamError("field 'apiKey' must be a string", UNSUPPORTED)
    language = canonical_language(language, languages)
    return StreamStart(language, _sample_rate(message.get("sampleRate")), key, encoding)


def _sample_rate(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE
    ):
        raise StreamError(
            f"field 'sampleRate' must be a whole number of Hz, {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE}",
            UNSUPPORTED,
        )
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise StreamError("text messages must be JSON objects", UNSUPPORTED) from None
    if not isinstance(message, dict):
        raise StreamError("text messages must be JSON objects", UNSUPPORTED)
    return message


async def _receive(websocket: WebSocket, limits: StreamLimits) -> Message:
    with anyio.move_on_after(limits.idle_seconds):
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", NORMAL))
        return message
    raise StreamError(
        f"no message for {limits.idle_seconds:g} s; send frames without pausing that long", POLICY
    )


async def _receive_text(websocket: WebSocket, limits: StreamLimits) -> str:
    message = await _receive(websocket, limits)
    text = message.get("text")
    if text is None:
        raise StreamError('the first message must be the text {"type": "start", ...}', UNSUPPORTED)
    if len(text) > MAX_TEXT_BYTES:
        raise StreamError(f"text messages are limited to {MAX_TEXT_BYTES} bytes", TOO_BIG)
    return str(text)


async def _receive_frame(websocket: WebSocket, limits: StreamLimits) -> bytes | None:
    """The next PCM frame, or None at ``{"type": "end"}``."""
    message = await _receive(websocket, limits)
    data = message.get("bytes")
    if data is not None:
        if len(data) > limits.max_frame_bytes:
            raise StreamError(f"binary frames are limited to {limits.max_frame_bytes} bytes", TOO_BIG)
        return bytes(data)
    text = message.get("text") or ""
    if len(text) > MAX_TEXT_BYTES or _json_object(text).get("type") != "end":
        raise StreamError('after start, send binary PCM frames, then {"type": "end"}', UNSUPPORTED)
    return None


async def _close(websocket: WebSocket, message: str, code: int) -> int | str:
    """Sends the error and closes with ``code``; the code, or "disconnect" if the client left first."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return "disconnect"
    try:
        await websocket.send_json({"type": "error", "message": message})
        await websocket.close(code)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return "disconnect"
    return code
