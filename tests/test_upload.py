from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from service.settings import Settings
from tests.conftest import API_KEY, DATA, encode, make_client, payload, post, speech
from tests.test_api import assert_error, assert_success

SAMPLE = (DATA / "sample-espeak.mp3").read_bytes()
ROUTE = "/api/voice-detection/file"


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
