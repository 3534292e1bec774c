"""Pure ASGI middleware: request id, one structured log line per request, metrics, headers."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.contract import error_body
from service.metrics import Metrics

access_log = logging.getLogger("voicecheck.access")
error_log = logging.getLogger("voicecheck.error")
INTERNAL_ERROR = JSONResponse(error_body("internal error; the request was not processed"), status_code=500)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


RANDOM_WEIGHTS_HEADER = (b"x-voicecheck-weights", b"random-init; verdicts are not meaningful")


class RandomWeightsHeader:
    """Marks every response of a service whose graph has random weights (a smoke-test build)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = scope.get("state", {}).get("runtime")
        if scope["type"] != "http" or runtime is None or not runtime.random_weights:
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), RANDOM_WEIGHTS_HEADER]
            await send(message)

        await self.app(scope, receive, send_marked)


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers = list(message.get("headers", []))
                headers += [*SECURITY_HEADERS, (b"x-request-id", request_id.encode())]
                message["headers"] = headers
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # a bug: answer in the contract's shape, log where, never what
            where = traceback.extract_tb(exc.__traceback__)[-1]
            error_log.error(
                json.dumps(
                    {
                        "request_id": request_id,
                        "error": type(exc).__name__,
                        "at": f"{Path(where.filename).name}:{where.lineno}",
                    }
                )
            )
            if not response_started:
                await INTERNAL_ERROR(scope, receive, send_with_headers)
        finally:
            self.metrics.in_flight -= 1
            seconds = time.perf_counter() - started
            # the router adds the endpoint to the scope when a route matched; unknown paths stay
            # one label so that scanners cannot grow the metrics without bound
            route = scope["path"] if "endpoint" in scope else "other"
            self.metrics.record_request(route, status, seconds)
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "ms": round(seconds * 1000, 1),
                    }
                )
            )
