"""Endpoint handlers."""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from service.contract import error_body, openapi_schema, parse_request, success_body
from service.errors import ClientError, ServiceUnavailable
from service.runtime import Runtime

RETRY_AFTER_SECONDS = "5"


async def detect_voice(request: Request) -> Response:
    runtime = _ready_runtime(request)
    _check_api_key(request, runtime.settings.api_key)
    runtime.rate_limit.take(runtime.settings.api_key)
    _check_content_type(request)
    async with runtime.limiter.admit():
        body = await read_body(request, runtime.settings.max_body_bytes)
        parsed = await run_in_threadpool(parse_request, body, runtime.settings.languages)
        del body
        async with runtime.limiter.slot():
            detection = await run_in_threadpool(runtime.analyse, parsed.audio)
    return JSONResponse(success_body(parsed.language, detection))


async def health(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    return JSONResponse(runtime.health(), status_code=200 if runtime.ready else 503)


async def metrics(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    text = runtime.metrics.render(runtime.limiter.rejected)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    return JSONResponse(openapi_schema(runtime.settings.languages))


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body, size = bytearray(), 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            body += chunk
    except ClientDisconnect:
        raise ClientError("the client disconnected before the body was complete") from None
    return bytes(body)


def _too_large(limit: int) -> ClientError:
    return ClientError(f"body is larger than the {limit} byte limit", 413)


def _ready_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    if not runtime.ready:
        raise ServiceUnavailable("the service is not ready; retry shortly")
    return runtime


def _check_api_key(request: Request, expected: str) -> None:
    given = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ClientError("missing or invalid API key (x-api-key header)", 401)


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ClientError("content type must be application/json", 415)


async def client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    headers = {"retry-after": RETRY_AFTER_SECONDS} if exc.status_code in (429, 503) else None
    return JSONResponse(error_body(exc.message), status_code=exc.status_code, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
