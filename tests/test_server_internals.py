"""The uvicorn and h11 internals that service/web/server.py's protocol subclasses rely on, as
installed.

pyproject.toml holds uvicorn to the minor range these were checked on. When one of these tests fails
(a new uvicorn), the subclass may now misbehave silently: read the named uvicorn module, adapt
service/web/server.py, run tests/test_hardening.py and tests/test_stream.py (they drive the real server),
then move the uvicorn bound in pyproject.toml to the version checked.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import pytest
import uvicorn
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.websockets import websockets_sansio_impl
from websockets.server import ServerProtocol

from service.web.server import BoundedH11Protocol, StrictWebSocketProtocol, server_config
from service.web.settings import Settings

ADAPT = (
    "uvicorn {version} changed {what}, which service/web/server.py's {subclass} relies on: read "
    "{module}, adapt the subclass, run tests/test_hardening.py and tests/test_stream.py, then set the "
    "uvicorn range in pyproject.toml to the version checked"
)


def why(what: str, subclass: type, module: Any) -> str:
    return ADAPT.format(
        version=uvicorn.__version__, what=what, subclass=subclass.__name__, module=module.__file__
    )


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def assigns(function: Callable[..., Any], attribute: str) -> bool:
    """Does ``function``'s source set ``self.<attribute>``?"""
    return re.search(rf"self\.{attribute}\s*(:[^=\n]*)?=[^=]", inspect.getsource(function)) is not None


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("__init__", ["self", "config", "server_state", "app_state", "_loop"]),
        ("connection_made", ["self", "transport"]),
        ("connection_lost", ["self", "exc"]),
        ("data_received", ["self", "data"]),
        ("handle_events", ["self"]),
        ("send_400_response", ["self", "msg"]),
        ("shutdown", ["self"]),
    ],
)
def test_h11_protocol_methods_the_subclass_overrides_keep_their_signature(
    method: str, expected: list[str]
) -> None:
    base = getattr(h11_impl.H11Protocol, method, None)
    assert base is not None, why(f"H11Protocol.{method} (gone)", BoundedH11Protocol, h11_impl)
    assert parameters(base) == expected, why(
        f"H11Protocol.{method}'s parameters to {parameters(base)}", BoundedH11Protocol, h11_impl
    )


def test_the_source_checks_can_fail() -> None:
    assert assigns(h11_impl.H11Protocol.__init__, "cycle")
    assert not assigns(h11_impl.H11Protocol.__init__, "more_body")  # the cycle's, not the protocol's
    assert not assigns(h11_impl.H11Protocol.__init__, "conn.our_state")


@pytest.mark.parametrize("attribute", ["conn", "connections", "loop", "transport", "cycle"])
def test_h11_protocol_sets_the_attributes_the_subclass_reads(attribute: str) -> None:
    assert assigns(h11_impl.H11Protocol.__init__, attribute), why(
        f"H11Protocol.__init__ (no self.{attribute})", BoundedH11Protocol, h11_impl
    )


def test_h11_protocol_reads_events_from_its_conn_and_answers_a_protocol_error_with_send_400() -> None:
    """BoundedH11Protocol swaps ``conn`` for a StrictConnection after __init__: uvicorn must read
    every event through ``self.conn``, hand the same object to each request cycle, and call
    ``send_400_response`` (overridden to write the contract's error) when h11 refuses a request."""
    source = inspect.getsource(h11_impl.H11Protocol.handle_events)
    for needle in (
        "self.conn.next_event()",
        "except h11.RemoteProtocolError",
        "self.send_400_response(",
        "conn=self.conn",
    ):
        assert needle in source, why(
            f"H11Protocol.handle_events (no {needle!r})", BoundedH11Protocol, h11_impl
        )
    assert "self.handle_events()" in inspect.getsource(h11_impl.H11Protocol.data_received), why(
        "H11Protocol.data_received (no self.handle_events())", BoundedH11Protocol, h11_impl
    )


@pytest.mark.parametrize(
    "attribute", ["more_body", "response_started", "response_complete", "disconnected", "message_event"]
)
def test_request_cycle_has_the_state_shutdown_reads_and_sets(attribute: str) -> None:
    cycle = h11_impl.RequestResponseCycle
    assert "conn" in parameters(cycle.__init__), why(
        "RequestResponseCycle(conn=...)", BoundedH11Protocol, h11_impl
    )
    assert assigns(cycle.__init__, attribute), why(
        f"RequestResponseCycle (no self.{attribute})", BoundedH11Protocol, h11_impl
    )
    assert f"self.{attribute}" in inspect.getsource(cycle), why(
        f"RequestResponseCycle's use of {attribute}", BoundedH11Protocol, h11_impl
    )


def test_request_cycles_receive_wakes_on_message_event_and_sees_disconnected() -> None:
    """On shutdown the subclass sets ``disconnected`` and ``message_event`` so the app's receive()
    returns http.disconnect instead of waiting for the rest of an upload."""
    receive = inspect.getsource(h11_impl.RequestResponseCycle.receive)
    for needle in ("self.message_event.wait()", "self.disconnected", "http.disconnect"):
        assert needle in receive, why(
            f"RequestResponseCycle.receive (no {needle!r})", BoundedH11Protocol, h11_impl
        )


def test_h11_offers_what_strict_connection_uses() -> None:
    assert parameters(h11.Connection.__init__)[:3] == ["self", "our_role", "max_incomplete_event_size"]
    assert h11.RemoteProtocolError("x", 431).error_status_hint == 431
    request = h11.Request(method="GET", target="/", headers=[("Host", "a")])
    assert request.target == b"/"
    assert list(request.headers) == [(b"host", b"a")]
    connection = h11.Connection(h11.SERVER, 1024)
    connection.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
    assert isinstance(connection.next_event(), h11.Request)
    assert connection.their_state is h11.SEND_BODY


def test_sansio_websocket_protocol_keeps_what_the_strict_subclass_uses() -> None:
    base = websockets_sansio_impl.WebSocketsSansIOProtocol
    module = websockets_sansio_impl
    for method, expected in (("send_receive_event_to_app", ["self"]), ("handle_parser_exception", ["self"])):
        assert parameters(getattr(base, method)) == expected, why(
            f"WebSocketsSansIOProtocol.{method}", StrictWebSocketProtocol, module
        )
    for attribute in ("curr_msg_data_type", "close_sent", "frames", "conn"):
        assert assigns(base.__init__, attribute), why(
            f"WebSocketsSansIOProtocol.__init__ (no self.{attribute})", StrictWebSocketProtocol, module
        )
    source = inspect.getsource(base.__init__)
    assert "ServerProtocol(" in source, why("the websockets protocol object", StrictWebSocketProtocol, module)
    assert parameters(ServerProtocol.send_close)[:3] == ["self", "code", "reason"]
    handle_text = inspect.getsource(base.handle_text)
    assert 'self.curr_msg_data_type = "text"' in handle_text, why(
        "WebSocketsSansIOProtocol.handle_text", StrictWebSocketProtocol, module
    )


def test_uvicorn_config_takes_every_option_the_server_sets(tmp_path: Path) -> None:
    config = server_config(object(), Settings(api_key="k", artifacts_dir=tmp_path))
    assert config.ws_per_message_deflate is False
    assert config.ws_ping_interval is None
    assert issubclass(config.http, BoundedH11Protocol)  # type: ignore[arg-type]
    assert config.ws is StrictWebSocketProtocol
