"""Pure ASGI middleware, one job each: request id, access log, metrics, headers, internal errors."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Iterable
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.web.contract import error_body
from service.web.prometheus import Metrics

access_log = logging.getLogger("voicecheck.access")
error_log = logging.getLogger("voicecheck.error")
INTERNAL_ERRORS = {500: "a bug; the message never carries internals"}
INTERNAL_ERROR = JSONResponse(error_body("internal error; the request was not processed"), status_code=500)

Header = tuple[bytes, bytes]
SECURITY_HEADERS: list[Header] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
RANDOM_WEIGHTS_HEADER: Header = (b"x-voicecheck-weights", b"random-init; verdicts are not meaningful")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", "-"))


def route_of(scope: Scope) -> str:
    """The router adds the endpoint to the scope when a route matched; unknown paths stay one
    label, so that scanners cannot grow the metrics or the logs' vocabulary without bound."""
    return str(scope["path"]) if "endpoint" in scope else "other"


def log_bug(exc: Exception, **context: str) -> None:
    """Where the bug is (its type, file and line), never what the client sent."""
    where = traceback.extract_tb(exc.__traceback__)[-1]
    line = {**context, "error": type(exc).__name__, "at": f"{Path(where.filename).name}:{where.lineno}"}
    error_log.error(json.dumps(line))


def adding_headers(send: Send, headers: Iterable[Header]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *headers]
        await send(message)

    return send_with_headers


class ResponseStatus:
    """Wraps ``send`` to see the status the app answers with (500 until it starts a response)."""

    def __init__(self, send: Send) -> None:
        self.status = 500
        self.started = False
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
        await self._send(message)


class HttpMiddleware:
    """Passes everything but HTTP (lifespan, websockets) straight through to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestId(HttpMiddleware):
    """Gives each request an id: ``request.state.request_id``, and the ``x-request-id`` header."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        await self.app(scope, receive, adding_headers(send, [(b"x-request-id", request_id.encode())]))


class AccessLog(HttpMiddleware):
    """One JSON line per request: id, method, route, status, time. Never what the client sent."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        response = ResponseStatus(send)
        try:
            await self.app(scope, receive, response)
        finally:
            line = {
                "request_id": request_id_of(scope),
                "method": scope["method"],
                "route": route_of(scope),
                "status": response.status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            access_log.info(json.dumps(line))


class RequestMetrics(HttpMiddleware):
    """Requests in flight, and a count and duration histogram per route and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        response = ResponseStatus(send)
        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, response)
        finally:
            self.metrics.in_flight -= 1
            self.metrics.record_request(route_of(scope), response.status, time.perf_counter() - started)


class SecurityHeaders(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, adding_headers(send, SECURITY_HEADERS))


class RandomWeightsHeader(HttpMiddleware):
    """Marks every response of a service whose graph has random weights (a smoke-test build)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = scope.get("state", {}).get("runtime")
        if runtime is not None and runtime.random_weights:
            send = adding_headers(send, [RANDOM_WEIGHTS_HEADER])
        await self.app(scope, receive, send)


class InternalErrors(HttpMiddleware):
    """A bug answers 500 in the contract's shape; the log says where, never what was sent."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = ResponseStatus(send)
        try:
            await self.app(scope, receive, response)
        except Exception as exc:
            log_bug(exc, request_id=request_id_of(scope))
            if not response.started:
                await INTERNAL_ERROR(scope, receive, send)
