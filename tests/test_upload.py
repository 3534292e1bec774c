from __future__ import annotations

import json
import socket
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from service.web.settings import Settings
from tests.conftest import API_KEY, DATA, encode, make_client, payload, post, serving, speech
from tests.live import LiveServer, live_server
from tests.test_api import assert_error, assert_success

SAMPLE = (DATA / "sample-espeak.mp3").read_bytes()
ROUTE = "/api/voice-detection/file"
BOUNDARY = "voicecheck-test-boundary"
LIVE_MAX_BODY = 1 << 20


def upload(
    client: TestClient,
    audio: bytes | None,
    fields: dict[str, str] | None = None,
    key: str | None = API_KEY,
) -> tuple[int, dict[str, object]]:
    data = {"language": "English"} if fields is None else fields
    files: dict[str, tuple[str | None, bytes | str, str | None]] = {
        name: (None, value, None) for name, value in data.items()
    }
    if audio is not None:
        files["file"] = ("clip.mp3", audio, "audio/mpeg")
    headers = {"x-api-key": key} if key is not None else {}
    response = client.post(ROUTE, files=files, headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("audio", "fmt"),
    [(SAMPLE, "mp3"), (encode(speech(12.0, seed=3), 16_000, "WAV", "PCM_16"), "wav")],
)
def test_upload_answers_equal_the_json_route(client: TestClient, audio: bytes, fmt: str) -> None:
    status, uploaded = upload(client, audio, {"language": "english", "audioFormat": fmt})
    assert status == 200, uploaded
    assert_success(uploaded)
    json_status, answered = post(client, payload(audio, fmt=fmt))
    assert json_status == 200
    assert uploaded == answered


def test_audio_format_is_optional(client: TestClient) -> None:
    status, body = upload(client, SAMPLE)
    assert status == 200
    assert_success(body)


@pytest.mark.parametrize(
    ("audio", "fields", "words"),
    [
        (None, {"language": "English"}, "missing field 'file'"),
        (SAMPLE, {}, "missing field 'language'"),
        (SAMPLE, {"language": "Klingon"}, "allowed: Tamil, English"),
        (SAMPLE, {"language": "English", "audioFormat": "aac"}, "allowed: mp3, wav"),
        (SAMPLE, {"language": "English", "colour": "red"}, "unknown field 'colour'"),
        (b"not audio at all", {"language": "English"}, "could not decode audio"),
        (b"", {"language": "English"}, "audio is empty"),
    ],
)
def test_bad_uploads_are_400(
    client: TestClient, audio: bytes | None, fields: dict[str, str], words: str
) -> None:
    status, body = upload(client, audio, fields)
    assert_error(status, body, 400, words)


def test_language_sent_as_a_file_is_400(client: TestClient) -> None:
    response = client.post(
        ROUTE,
        files={"file": ("a.mp3", SAMPLE, "audio/mpeg"), "language": ("l.txt", b"English", "text/plain")},
        headers={"x-api-key": API_KEY},
    )
    assert_error(response.status_code, response.json(), 400, "multipart")


@pytest.mark.parametrize("key", [None, "wrong"])
def test_upload_needs_the_key(client: TestClient, key: str | None) -> None:
    status, body = upload(client, SAMPLE, key=key)
    assert_error(status, body, 401, "x-api-key")


def test_json_body_on_the_upload_route_is_415(client: TestClient) -> None:
    response = client.post(ROUTE, json=payload(SAMPLE), headers={"x-api-key": API_KEY})
    assert_error(response.status_code, response.json(), 415, "multipart/form-data")


def test_malformed_multipart_is_400(client: TestClient) -> None:
    response = client.post(
        ROUTE,
        content=b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nno closing boundary',
        headers={"x-api-key": API_KEY, "content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error"


def test_upload_over_body_limit_is_413(settings: Settings) -> None:
    with make_client(settings, max_body_bytes=4096) as small:
        status, body = upload(small, SAMPLE)
    assert_error(status, body, 413, "4096 byte limit")


def test_openapi_describes_the_upload(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"][ROUTE]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file", "language"]
    assert schema["properties"]["file"]["format"] == "binary"
    assert {"200", "400", "401", "413", "415", "503"} <= set(operation["responses"])


def multipart(audio: bytes, language: str = "English") -> bytes:
    """A complete upload body (its content type: ``multipart/form-data; boundary=BOUNDARY``)."""
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="language"\r\n\r\n{language}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


UPLOAD_HEADERS = {"x-api-key": API_KEY, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path) -> Iterator[LiveServer]:
    with live_server(tiny_artifacts, API_KEY, env={"MAX_BODY_BYTES": str(LIVE_MAX_BODY)}) as running:
        yield running


def stalled_near_limit_upload(server: LiveServer) -> socket.socket:
    """An upload of MAX_BODY_BYTES that sends all but its last 64 bytes, then stalls."""
    body = multipart(encode(speech(2.0), 16_000, "WAV", "PCM_16"))
    body += b"\0" * (LIVE_MAX_BODY - len(body))  # after the closing boundary: ignored, still read
    head = f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in UPLOAD_HEADERS.items()
    )
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode() + b"\r\n" + body[:-64])
    return sock


def test_stalled_near_limit_uploads_lock_no_one_out(server: LiveServer) -> None:
    stalled = [stalled_near_limit_upload(server) for _ in range(2)]
    time.sleep(0.5)  # the server has read what they sent
    try:
        started = time.monotonic()
        answered = httpx.post(
            f"{server.url}/api/voice-detection",
            json=payload(encode(speech(2.0), 16_000, "WAV", "PCM_16"), fmt="wav"),
            headers={"x-api-key": API_KEY},
            timeout=30,
        )
        assert answered.status_code == 200, answered.text
        assert time.monotonic() - started < 10  # the stalled uploads may stay for 10 s + 16 s
        uploaded = httpx.post(
            f"{server.url}{ROUTE}",
            content=multipart(SAMPLE),
            headers=UPLOAD_HEADERS,
            timeout=30,
        )
        assert uploaded.status_code == 200, uploaded.text
    finally:
        for sock in stalled:
            sock.close()


def post_in_pieces(client: TestClient, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    """``body`` handed to the app in 64 KiB pieces, as uvicorn does (TestClient hands it over whole)."""
    piece = 64 * 1024
    offsets = iter(range(0, len(body), piece))
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        start = next(offsets, None)
        if start is None:
            return {"type": "http.disconnect"}
        return {
            "type": "http.request",
            "body": body[start : start + piece],
            "more_body": start + piece < len(body),
        }

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": client.app_state.copy(),
    }
    assert client.portal is not None

    async def call() -> None:
        await client.app(scope, receive, send)

    client.portal.call(call)
    answer = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return sent[0]["status"], json.loads(answer)


def test_an_upload_costs_little_memory_beyond_its_analysis(settings: Settings) -> None:
    """A 16 MiB upload (2.8 s of 192 kHz 8-channel float WAV): its bytes go to disk as they arrive
    and reach the decoder from there, so the request takes little more memory than analysing the
    clip does (before, the body was held whole, copied, and read back whole from its spool)."""
    clip = np.repeat(speech(2.8, seed=5), 12)
    wav = encode(np.stack([np.roll(clip, 1000 * k) for k in range(8)], axis=1), 192_000, "WAV", "FLOAT")
    body = multipart(wav)
    assert len(body) > 16 << 20
    with serving(settings, max_body_bytes=32 << 20) as (client, runtime):
        analysis = traced_peak(lambda: runtime.analyse(wav))
        upload = traced_peak(lambda: post_in_pieces(client, ROUTE, UPLOAD_HEADERS, body))
        status, answer = post_in_pieces(client, ROUTE, UPLOAD_HEADERS, body)
    assert status == 200, answer
    assert upload - analysis < len(body) / 8, f"{analysis / 2**20:.1f} MiB, then {upload / 2**20:.1f} MiB"


def traced_peak(run: Callable[[], object]) -> int:
    """The most memory Python's allocations (numpy's too) held at once while ``run`` ran."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("route", "headers"),
    [(ROUTE, UPLOAD_HEADERS), ("/api/voice-detection", {"content-type": "application/json"})],
)
def test_a_body_that_cannot_be_spooled_is_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, route: str, headers: dict[str, str]
) -> None:
    audio = encode(speech(12.0, seed=3), 16_000, "WAV", "PCM_16")  # past the in-memory part
    body = multipart(audio) if route == ROUTE else json.dumps(payload(audio, fmt="wav")).encode()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # as if the disk were full
    response = client.post(route, content=body, headers={"x-api-key": API_KEY, **headers})
    assert_error(response.status_code, response.json(), 503, "no room to receive the body")
    assert response.headers["retry-after"].isdigit()
