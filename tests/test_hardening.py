"""The eight defects of the hardening issue, each reproduced against a real server, and its bounds."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.cli.stream_client import StreamOptions, load_pcm, play
from service.web.contract import parse_request
from service.web.errors import ClientError
from tests.conftest import API_KEY, encode, payload, speech
from tests.live import LiveServer, live_server

SMALL = json.dumps(payload(encode(speech(2.0), 16_000, "WAV"), fmt="wav")).encode()
BODY_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path) -> Iterator[LiveServer]:
    with live_server(
        tiny_artifacts,
        API_KEY,
        env={
            "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "HEADER_TIMEOUT_SECONDS": "2",
            "MAX_CONNECTIONS": "24",
            "MAX_BODY_BYTES": str(1 << 20),
        },
    ) as running:
        yield running


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_contract_error(raw: bytes, status: int, words: str) -> dict[str, str]:
    code, headers, body = split_response(raw)
    assert code == status, raw[:300]
    assert json.loads(body) == {"status": "error", "message": json.loads(body)["message"]}
    assert words in json.loads(body)["message"]
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert len(headers["x-request-id"]) == 16
    return headers


def stalled_upload(server: LiveServer) -> socket.socket:
    sock = connect(server)
    sock.sendall(
        b"POST /api/voice-detection HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"x-api-key: {API_KEY}\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"a'
    )
    return sock


def post_small(server: LiveServer) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/voice-detection",
        content=SMALL,
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
        timeout=30,
    )


def test_1_stalled_uploads_neither_lock_others_out_nor_live_forever(server: LiveServer) -> None:
    stalled = [stalled_upload(server) for _ in range(9)]
    time.sleep(0.2)
    started = time.monotonic()
    response = post_small(server)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < BODY_TIMEOUT + 5
    for sock in stalled:
        assert_contract_error(read_all(sock), 408, "did not arrive within")
        sock.close()
    assert time.monotonic() - started < BODY_TIMEOUT + 5


def test_1_slow_headers_are_cut_off(server: LiveServer) -> None:
    sock = connect(server)
    sock.sendall(b"POST /api/voice-detection HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert_contract_error(read_all(sock), 408, "headers did not arrive")
    assert 1.5 < time.monotonic() - started < 5


def test_2_json_amplification_is_refused_before_parsing() -> None:
    body = b'{"pad":[' + b"{}," * 8_700_000 + b'{}], "language": "English"}'
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(ClientError, match="at most 16 JSON objects"):
        parse_request(body, ("English",))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.monotonic() - started < 2
    assert peak < len(body) // 10  # json.loads alone took 30 times the body


def test_2_many_members_are_refused_too() -> None:
    members = ",".join(f'"k{i}": 1' for i in range(300))
    with pytest.raises(ClientError, match="256 members"):
        parse_request(("{" + members + "}").encode(), ("English",))


def test_3_content_length_with_chunked_is_refused_and_closed(server: LiveServer) -> None:
    sock = connect(server)
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(
        b"POST /api/voice-detection HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
    )
    raw = read_all(sock)
    headers = assert_contract_error(raw, 400, "not both")
    assert headers["connection"] == "close"
    assert raw.count(b"HTTP/1.1") == 1, "the smuggled request was answered"


def test_an_answered_oversized_body_is_drained_so_the_client_reads_the_413(server: LiveServer) -> None:
    sock = connect(server)
    body = b" " * (2 << 20)
    sock.sendall(
        b"POST /api/voice-detection HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"x-api-key: {API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    sock.settimeout(5)
    received = b""
    while b"byte limit" not in received and (chunk := sock.recv(65536)):
        received += chunk
    code, _, answer = split_response(received)
    assert code == 413
    assert b"byte limit" in answer


def test_4_trailing_slash_is_a_404_not_a_redirect_to_the_host_header(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/health/", headers={"host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["status"] == "error"


def test_5_sigterm_answers_a_stalled_upload_at_once(tiny_artifacts: Path) -> None:
    with live_server(tiny_artifacts, API_KEY) as server:
        sock = stalled_upload(server)
        time.sleep(0.3)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert_contract_error(read_all(sock), 503, "shutting down")
        assert time.monotonic() - started < 3
        log = server.stop(timeout=10)
    assert time.monotonic() - started < 5
    assert "Traceback" not in log
    assert server.process.returncode in (0, -signal.SIGTERM)


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "malformed HTTP request"),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n",
            431,
            "headers are over",
        ),
    ],
)
def test_6_responses_the_server_makes_have_the_contract_shape(
    server: LiveServer, request_bytes: bytes, status: int, words: str
) -> None:
    sock = connect(server)
    sock.sendall(request_bytes)
    assert_contract_error(read_all(sock), status, words)


def test_6_too_many_connections_get_a_503_in_the_contract_shape(server: LiveServer) -> None:
    idle = [connect(server) for _ in range(24)]
    time.sleep(0.2)
    extra = connect(server)
    assert_contract_error(read_all(extra), 503, "too many open connections")
    for sock in idle:
        sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_websocket_stream_outlives_the_head_deadline(server: LiveServer, tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(encode(speech(3.0), 16_000, "WAV"))
    pcm, rate = load_pcm(clip)
    url = server.url.replace("http://", "ws://") + "/api/voice-detection/stream"
    started = time.monotonic()
    result = asyncio.run(play(pcm, rate, StreamOptions(url, API_KEY, speed=1.0)))
    assert time.monotonic() - started > 2.5  # longer than HEADER_TIMEOUT_SECONDS
    assert result.error is None
    assert result.summary is not None


def test_openapi_lists_every_status_the_route_sends(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    statuses = set(spec["paths"]["/api/voice-detection"]["post"]["responses"])
    assert statuses == {"200", "400", "401", "408", "413", "415", "429", "431", "500", "503"}
