"""Endpoint handlers."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from tempfile import SpooledTemporaryFile
from typing import Any, BinaryIO

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from service.detector.errors import AudioError
from service.web import apidocs
from service.web.contract import (
    KEY_HELP,
    REQUEST_ERRORS,
    DetectionRequest,
    check_api_key,
    error_body,
    parse_request,
    success_body,
)
from service.web.errors import AUDIO_ERRORS, ClientError, ServiceUnavailable
from service.web.limiter import LIMIT_ERRORS
from service.web.middleware import INTERNAL_ERRORS
from service.web.openapi import Operation, documented, json_request_body, merged, openapi_document
from service.web.runtime import Runtime
from service.web.server import CONNECTION_ERRORS
from service.web.settings import Settings

RETRY_AFTER_SECONDS = "5"


# Bodies in transit are kept in memory up to this size, then on disk: a client that stalls holds
# its connection and its temporary file, never a share of the service's memory.
SPOOL_MEMORY_BYTES = 256 * 1024

# (request, the body as it arrives, the deadline): the request, its audio open until the exit
BodyParser = Callable[
    [Request, AsyncGenerator[bytes, None], float], AbstractAsyncContextManager[DetectionRequest]
]


def detection_errors(media_type: str) -> dict[int, str]:
    """What a detection route may answer besides 200: every check on detect_with's path."""
    checks = {
        400: f"malformed {media_type} body",
        401: "missing or wrong x-api-key",
        408: "the body arrived too slowly",
        413: "body over the size limit",
        415: f"content type is not {media_type}",
        503: "not ready (see Retry-After)",
    }
    return merged(CONNECTION_ERRORS, checks, LIMIT_ERRORS, REQUEST_ERRORS, AUDIO_ERRORS, INTERNAL_ERRORS)


@documented(
    Operation(
        "Classify a voice clip",
        errors=detection_errors("application/json"),
        success="Detection",
        body=json_request_body,
        secured=True,
    )
)
async def detect_voice(request: Request) -> Response:
    return await detect_with(request, "application/json", parse_json)


@asynccontextmanager
async def parse_json(
    request: Request, chunks: AsyncGenerator[bytes, None], deadline: float
) -> AsyncIterator[DetectionRequest]:
    """The body is spooled as it arrives; once it is complete, its parse takes its size from the
    service-wide parsing budget (waiting for room as long as it would wait for an inference slot)."""
    runtime: Runtime = request.state.runtime
    async with (
        spooled(chunks) as body,
        runtime.parsing.holding(body.size or 0, runtime.limiter.wait_seconds(deadline)),
    ):
        parsed = await run_in_threadpool(_parse_file, body.file, runtime.settings.languages)
    yield parsed


def _parse_file(file: BinaryIO, languages: tuple[str, ...]) -> DetectionRequest:
    file.seek(0)
    return parse_request(file.read(), languages)


@asynccontextmanager
async def spooled(chunks: AsyncIterator[bytes]) -> AsyncIterator[UploadFile]:
    """The body in a temporary file (in memory up to SPOOL_MEMORY_BYTES), deleted on exit."""
    with SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as file:
        body = UploadFile(file, size=0)  # type: ignore[arg-type]  # as starlette's own parser does
        with no_room_is_503():
            async for chunk in chunks:
                await body.write(chunk)
        yield body


@contextmanager
def no_room_is_503() -> Iterator[None]:
    """A temporary file that cannot be written (the disk is full) is the service's trouble: 503."""
    try:
        yield
    except OSError as exc:
        raise ServiceUnavailable("no room to receive the body; retry in a few seconds") from exc


async def detect_with(request: Request, media_type: str, parse: BodyParser) -> Response:
    """The detection routes' one path: checks, the body within its limits, ``parse``, the queue,
    the analysis by the deadline, the contract's answer."""
    deadline = time.monotonic() + request.state.runtime.settings.deadline_seconds
    runtime = _ready_runtime(request)
    settings = runtime.settings
    check_api_key(request.headers.get("x-api-key"), settings.api_key, KEY_HELP)
    runtime.rate_limit.take(settings.api_key)
    _check_content_type(request, media_type)
    runtime.limiter.refuse_if_full()  # before reading a body that could not be served
    async with (
        parse(request, body_chunks(request, settings), deadline) as parsed,
        runtime.limiter.admit(),
        runtime.limiter.slot(deadline),
    ):
        detection = await run_in_threadpool(runtime.analyse, parsed.audio, deadline)
    return JSONResponse(success_body(parsed.language, detection, runtime.weights))


@documented(Operation("Readiness and model provenance", answers={200: "ready", 503: "not ready"}))
async def health(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    return JSONResponse(health_report(runtime), status_code=200 if runtime.ready else 503)


def health_report(runtime: Runtime) -> dict[str, Any]:
    """Readiness, where the graph came from and how the votes were learned."""
    status = "degraded" if runtime.random_weights else "ok"
    provenance = runtime.rules.provenance
    return {
        "status": status if runtime.ready else "unavailable",
        "model": {
            "source": runtime.manifest.source.to_json(),
            "random_weights": runtime.random_weights,
            "graph_sha256": runtime.manifest.graph.sha256,
            "layers": runtime.manifest.source.layers,
            "fidelity": runtime.manifest.fidelity,
        },
        "votes": {
            "calibrated": runtime.rules.calibrated,
            "source": provenance.source,
            "created": provenance.created,
            "warning": provenance.warning,
            "cross_validated": _headline(provenance.cross_validated),
            "window_seconds": provenance.window_seconds,
        },
        "window_seconds": runtime.settings.window_seconds,
        "deadline_seconds": runtime.settings.deadline_seconds,
        "encoder_seconds_per_audio_second": round(runtime.pace.seconds_per_audio_second, 4),
    }


def _headline(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if not metrics:
        return None
    return {k: metrics[k] for k in ("clips", "balanced_accuracy", "eer", "ece") if k in metrics}


@documented(Operation("Prometheus metrics", answers={200: "text exposition format 0.0.4"}))
async def metrics(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    text = runtime.metrics.render(runtime.limiter.rejected, runtime.limiter.pending)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


@documented(Operation("This document", answers={200: "OpenAPI 3.0"}))
async def openapi(request: Request) -> Response:
    return JSONResponse(_openapi_document(request))


@documented(Operation("This document as an HTML page", answers={200: "text/html"}))
async def docs(request: Request) -> Response:
    return HTMLResponse(apidocs.render(_openapi_document(request)))


def _openapi_document(request: Request) -> dict[str, Any]:
    runtime: Runtime = request.state.runtime
    return openapi_document(request.app.routes, runtime.settings.languages)


@documented(Operation("Where to start: the routes and their documentation", answers={200: "links"}))
async def index(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    return JSONResponse(
        {
            "service": "voicecheck: is this voice AI-generated or human?",
            "detect": "POST /api/voice-detection (JSON, x-api-key header), "
            "POST /api/voice-detection/file (multipart), WebSocket /api/voice-detection/stream",
            "docs": "/docs",
            "openapi": "/openapi.json",
            "health": "/health",
            "readme": "README.md at the root of the voicecheck source: contract, settings, limits",
            "weights": runtime.weights,
        }
    )


async def body_chunks(request: Request, settings: Settings) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, refused with 413 as soon as it is known to exceed MAX_BODY_BYTES and
    with 408 when it arrives slower than BODY_TIMEOUT_SECONDS plus its size at
    MIN_UPLOAD_BYTES_PER_SECOND (time spent by the consumer between pieces is not the client's)."""
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    expected = int(declared) if declared.isdigit() else limit
    allowed = settings.body_timeout_seconds + expected / settings.min_upload_bytes_per_second
    left = allowed
    received = 0
    stream = request.stream()
    while True:
        started = time.monotonic()
        try:
            with anyio.fail_after(left):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ClientError(
                f"the body did not arrive within {allowed:.0f} s: send it at "
                f"{settings.min_upload_bytes_per_second // 1024} KiB/s or faster",
                408,
                close=True,
            ) from None
        except ClientDisconnect:
            raise ClientError("the client disconnected before the body was complete") from None
        left -= time.monotonic() - started
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        yield chunk


def _too_large(limit: int) -> ClientError:
    return ClientError(f"body is larger than the {limit} byte limit", 413)


def _ready_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    if not runtime.ready:
        raise ServiceUnavailable("the service is not ready; retry shortly")
    return runtime


def _check_content_type(request: Request, expected: str) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != expected:
        raise ClientError(f"content type must be {expected}", 415)


async def client_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, AudioError):
        exc = ClientError(exc.message)
    assert isinstance(exc, ClientError)
    headers = {"retry-after": RETRY_AFTER_SECONDS} if exc.status_code in (429, 503) else {}
    if exc.close:
        headers["connection"] = "close"
    return JSONResponse(error_body(exc.message), status_code=exc.status_code, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
