"""The HTTP server: uvicorn on its h11 protocol, subclassed for the bounds a public endpoint needs.

uvicorn leaves four of them open, so ``BoundedH11Protocol`` adds them where they live, in the
connection: a deadline for each request's head (uvicorn times out only idle keep-alive
connections), a cap on open connections (uvicorn's ``limit_concurrency`` answers in plain text),
refusal of a request that carries both Content-Length and Transfer-Encoding (RFC 9112 §6.3: a
proxy may frame it differently, which smuggles requests), and, on shutdown, a prompt answer to
uploads still arriving. The responses it writes itself have the contract's shape and headers.

WebSockets (the stream route) get uvicorn's websockets protocol without per-message deflate, and
with the largest message it takes set from STREAM_MAX_FRAME_BYTES: a frame is refused by its
header before it is buffered, and bytes on the wire are bytes in memory (a compressed frame could
inflate a thousandfold). That protocol stops reading the socket after each message until the app
has taken it, so what a connection queues is bounded by one read. ``StrictWebSocketProtocol``
closes a text message that is not UTF-8 with 1007 instead of logging a traceback.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from service.web.contract import error_body
from service.web.middleware import SECURITY_HEADERS, new_request_id
from service.web.settings import Settings

MAX_HEADER_BYTES = 16 * 1024
CONFLICTING_FRAMING = "a request may carry Content-Length or Transfer-Encoding, not both"
MALFORMED = "malformed HTTP request: send an HTTP/1.1 request line and headers"
# the longest text message of the stream protocol (service/web/stream.py checks its own, smaller limit)
MAX_WS_TEXT_BYTES = 4096
INVALID_TEXT = 1007  # RFC 6455: a text message that is not UTF-8
CONNECTION_ERRORS = {
    400: "malformed HTTP",
    408: "request headers arrived too slowly",
    431: "request headers too large",
    503: "too many open connections, or shutting down",
}


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_seconds: float
    max_connections: int


def raw_error(status: int, message: str) -> bytes:
    """A complete error response in the contract's shape, for when there is no request to answer."""
    body = json.dumps(error_body(message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
        (b"x-request-id", new_request_id().encode()),
    ]
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
    return head + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body


class StrictConnection(h11.Connection):
    """h11, refusing ambiguous framing and remembering why it refused a request."""

    refusal: tuple[int, str] = (400, MALFORMED)

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            too_big = exc.error_status_hint == 431
            self.refusal = (
                (431, f"request headers are over {MAX_HEADER_BYTES} bytes") if too_big else self.refusal
            )
            raise
        if isinstance(event, h11.Request):
            names = {name.lower() for name, _ in event.headers}
            if len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers) > MAX_HEADER_BYTES:
                self.refusal = (431, f"request headers are over {MAX_HEADER_BYTES} bytes")
                raise h11.RemoteProtocolError(self.refusal[1], 431)
            if {b"content-length", b"transfer-encoding"} <= names:
                self.refusal = (400, CONFLICTING_FRAMING)
                raise h11.RemoteProtocolError(CONFLICTING_FRAMING)
        return event


class BoundedH11Protocol(H11Protocol):
    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = self.strict = StrictConnection(h11.SERVER, MAX_HEADER_BYTES)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = False  # whether any of the awaited head has arrived
        self._head_of: object = None  # the cycle whose head arrived last

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refuse(503, "too many open connections; retry in a few seconds")
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        between_requests = self.cycle is None or self.cycle.response_complete
        if between_requests and self._head_timer is None:
            self._await_head()  # the next head (or an answered body) is arriving; idle is keep-alive's
        self._head_bytes = True
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        upgraded = self.transport.get_protocol() is not self  # now a WebSocket: its own limits apply
        if upgraded or (self.cycle is not None and self.cycle is not self._head_of):
            self._head_of = self.cycle
            self._cancel_head_timer()

    def send_400_response(self, msg: str) -> None:
        self.refuse(*self.strict.refusal)

    def shutdown(self) -> None:
        if self.cycle is not None and self.cycle.more_body and not self.cycle.response_started:
            self.cycle.disconnected = True  # the app's receive() now says the client went away
            self.cycle.message_event.set()
            self.refuse(503, "the service is shutting down; retry in a few seconds")
            return
        super().shutdown()

    def refuse(self, status: int, message: str) -> None:
        self.transport.write(raw_error(status, message))
        self.transport.close()

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._head_bytes = False
        self._head_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        # connected and never sent a byte, or still sending the body of a request already answered
        # (a 413 or 503 before the body was read: uvicorn discards the rest, for this long)
        if not self._head_bytes or self.conn.their_state is h11.SEND_BODY:
            self.transport.close()
            return
        seconds = f"{self.limits.header_timeout_seconds:g}"
        self.refuse(408, f"the request line and headers did not arrive within {seconds} s")


class StrictWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol; a text message that is not UTF-8 closes the connection with
    1007 and a reason, and the app hears a disconnect (uvicorn would log a traceback)."""

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent and not _is_utf8(self.frames):
            self.frames = []
            self.conn.send_close(INVALID_TEXT, "text messages must be UTF-8 JSON")
            self.handle_parser_exception()
            return
        super().send_receive_event_to_app()


def _is_utf8(frames: list[bytes]) -> bool:
    try:
        b"".join(frames).decode()
    except UnicodeDecodeError:
        return False
    return True


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedH11Protocol]:
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"limits": limits})


def server_config(app: Any, settings: Settings) -> uvicorn.Config:
    limits = ConnectionLimits(settings.header_timeout_seconds, settings.max_connections)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=bounded_protocol(limits),
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_keep_alive=5,
        ws=StrictWebSocketProtocol,
        ws_per_message_deflate=False,
        ws_max_size=max(settings.stream_max_frame_bytes, MAX_WS_TEXT_BYTES),
        # no pings: a fast sender's pong waits behind its queued frames while windows are analysed
        # (closed 1011 on a busy machine); STREAM_IDLE_SECONDS ends a client that went silent
        ws_ping_interval=None,
        # in flight at SIGTERM: an analysis ends by its deadline, an upload is answered at once
        timeout_graceful_shutdown=int(settings.deadline_seconds) + 10,
    )
