from __future__ import annotations

import base64
import json
import math
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
from starlette.testclient import TestClient

from service.detector.artifacts import Artifacts, ArtifactsError, ModelOrigin
from service.detector.windows import Detection
from service.web.settings import Settings
from tests.conftest import (
    API_KEY,
    DATA,
    encode,
    make_client,
    payload,
    post,
    serving,
    speech,
    with_foreign_votes,
)

SAMPLE = (DATA / "sample-espeak.mp3").read_bytes()


def assert_error(status: int, body: dict[str, object], expected: int, words: str) -> None:
    assert status == expected, body
    assert set(body) == {"status", "message"}
    assert body["status"] == "error"
    assert words in str(body["message"])


def assert_success(body: dict[str, object], language: str = "English") -> None:
    assert body["status"] == "success"
    assert body["language"] == language
    assert body["classification"] in ("AI_GENERATED", "HUMAN")
    assert isinstance(body["confidenceScore"], float)
    assert 0.0 <= body["confidenceScore"] <= 1.0
    assert isinstance(body["explanation"], str)
    assert "signals point to" in body["explanation"]
    votes = body["votes"]
    assert isinstance(votes, list)
    assert len(votes) == 5
    assert {v["supports"] for v in votes} <= {"AI_GENERATED", "HUMAN"}


def test_real_mp3_gets_every_contract_field(client: TestClient) -> None:
    status, body = post(client, payload(SAMPLE))
    assert status == 200
    assert_success(body)
    votes = body["votes"]
    assert isinstance(votes, list)
    ai_votes = sum(v["supports"] == "AI_GENERATED" for v in votes)
    assert body["classification"] == ("AI_GENERATED" if ai_votes >= 3 else "HUMAN")


@pytest.mark.parametrize(
    ("fmt", "rate", "channels", "subtype"),
    [
        ("WAV", 44_100, 2, "PCM_16"),
        ("FLAC", 48_000, 1, None),
        ("OGG", 48_000, 2, "VORBIS"),
        ("MP3", 44_100, 2, None),
    ],
)
def test_other_formats_rates_and_stereo(
    client: TestClient, fmt: str, rate: int, channels: int, subtype: str | None
) -> None:
    clip = np.interp(np.arange(3 * rate) / rate, np.arange(48_000) / 16_000, speech(3.0)).astype(np.float32)
    audio = encode(np.repeat(clip[:, None], channels, axis=1), rate, fmt, subtype)
    status, body = post(client, payload(audio, fmt=fmt.lower()))
    assert status == 200, body
    assert_success(body)


def test_decoding_goes_by_bytes_not_label(client: TestClient) -> None:
    status, body = post(client, payload(encode(speech(2.0), 16_000, "FLAC"), fmt="mp3"))
    assert status == 200
    assert_success(body)


@pytest.mark.parametrize("spelling", ["english", "ENGLISH", " English "])
def test_language_is_case_insensitive_and_canonical(client: TestClient, spelling: str) -> None:
    status, body = post(client, payload(SAMPLE, language=spelling))
    assert status == 200
    assert body["language"] == "English"


def test_long_clip_has_segments(client: TestClient, settings: Settings) -> None:
    status, body = post(client, payload(encode(speech(25.0), 16_000, "FLAC")))
    assert status == 200
    segments = body["segments"]
    assert isinstance(segments, list)
    assert len(segments) == math.ceil(25.0 / settings.window_seconds)
    assert segments[0]["start"] == 0.0
    assert segments[-1]["end"] == pytest.approx(25.0)
    assert all(s["classification"] in ("AI_GENERATED", "HUMAN") for s in segments)


def test_short_clip_has_no_segments(client: TestClient) -> None:
    _, body = post(client, payload(SAMPLE))
    assert "segments" not in body


@pytest.mark.parametrize("key", [None, "", "wrong-key", API_KEY + "x"])
def test_missing_or_wrong_key_is_401(client: TestClient, key: str | None) -> None:
    assert_error(*post(client, payload(SAMPLE), key=key), 401, "API key")


def test_401_says_where_the_key_goes_and_where_it_is_kept_but_not_the_key(client: TestClient) -> None:
    status, body = post(client, payload(SAMPLE), key="wrong")
    assert status == 401
    message = str(body["message"])
    assert "x-api-key header" in message
    assert "API_KEY" in message
    assert "API_KEY_FILE" in message
    assert "scripts/serve" in message
    assert API_KEY not in message


@pytest.mark.parametrize("raw", [b"", b" \r\n\t "])
def test_empty_body_is_400_saying_it_is_empty_and_what_to_send(client: TestClient, raw: bytes) -> None:
    status, body = post_raw(client, raw)
    assert_error(
        status, body, 400, "body is empty: send a JSON object with language, audioFormat, audioBase64"
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([1, 2], "JSON object"),
        ("just a string", "JSON object"),
        ({"audioFormat": "mp3", "audioBase64": "AAAA"}, "missing field 'language'"),
        ({"language": "English", "audioBase64": "AAAA"}, "missing field 'audioFormat'"),
        ({"language": "English", "audioFormat": "mp3"}, "missing field 'audioBase64'"),
        ({"language": 5, "audioFormat": "mp3", "audioBase64": "AAAA"}, "'language' must be a string"),
        (
            {"language": "English", "audioFormat": None, "audioBase64": "AAAA"},
            "'audioFormat' must be a string",
        ),
        (
            {"language": "English", "audioFormat": "mp3", "audioBase64": ["x"]},
            "'audioBase64' must be a string",
        ),
        (
            {"language": "Klingon", "audioFormat": "mp3", "audioBase64": "AAAA"},
            "allowed: Tamil, English, Hindi, Malayalam, Telugu",
        ),
        (
            {"language": "English", "audioFormat": "aac", "audioBase64": "AAAA"},
            "allowed: mp3, wav, flac, ogg",
        ),
        ({"language": "English", "audioFormat": "mp3", "audioBase64": "not base64!!"}, "not valid base64"),
        ({"language": "English", "audioFormat": "mp3", "audioBase64": ""}, "empty"),
        (
            {
                "language": "English",
                "audioFormat": "mp3",
                "audioBase64": base64.b64encode(b"noise" * 100).decode(),
            },
            "could not decode",
        ),
    ],
)
def test_bad_requests_are_400(client: TestClient, body: object, words: str) -> None:
    assert_error(*post(client, body), 400, words)


@pytest.mark.parametrize(
    ("audio", "words"),
    [
        (encode(np.zeros(48_000, dtype=np.float32), 16_000, "WAV"), "silent"),
        (encode(speech(0.2), 16_000, "WAV"), "at least"),
    ],
)
def test_unusable_audio_is_400(client: TestClient, audio: bytes, words: str) -> None:
    assert_error(*post(client, payload(audio)), 400, words)


HUGE_NUMBER = (
    b'{"language": "English", "audioFormat": "mp3", "audioBase64": "AAAA", "x": ' + b"1" * 5000 + b"}"
)


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00garbage", b"[" * 100_000, HUGE_NUMBER])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    assert_error(*post_raw(client, raw), 400, "JSON")


def post_raw(client: TestClient, raw: bytes) -> tuple[int, dict[str, object]]:
    headers = {"x-api-key": API_KEY, "content-type": "application/json"}
    response = client.post("/api/voice-detection", content=raw, headers=headers)
    return response.status_code, response.json()


def test_line_wrapped_and_data_uri_base64_are_accepted(client: TestClient) -> None:
    encoded = base64.encodebytes(SAMPLE).decode()  # 76-column lines
    body = {"language": "English", "audioFormat": "mp3", "audioBase64": "data:audio/mpeg;base64," + encoded}
    status, answer = post(client, body)
    assert status == 200
    assert_success(answer)


def test_non_ascii_base64_is_400(client: TestClient) -> None:
    assert_error(
        *post(client, {"language": "English", "audioFormat": "mp3", "audioBase64": "ÀÁÂ"}), 400, "base64"
    )


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/api/voice-detection",
        content=json.dumps(payload(SAMPLE)),
        headers={"x-api-key": API_KEY, "content-type": "text/plain"},
    )
    assert_error(response.status_code, response.json(), 415, "application/json")


def test_body_over_limit_is_413_by_header_and_by_stream(settings: Settings) -> None:
    with make_client(settings, max_body_bytes=4096) as small:
        big = json.dumps(payload(b"x" * 10_000))
        response = small.post(
            "/api/voice-detection",
            content=big,
            headers={"x-api-key": API_KEY, "content-type": "application/json"},
        )
        assert_error(response.status_code, response.json(), 413, "4096 byte limit")

        def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while streaming
            for _ in range(10):
                yield b" " * 1000

        response = small.post(
            "/api/voice-detection",
            content=chunks(),
            headers={"x-api-key": API_KEY, "content-type": "application/json"},
        )
        assert_error(response.status_code, response.json(), 413, "4096 byte limit")


def test_too_long_audio_is_400(settings: Settings) -> None:
    with make_client(settings, max_audio_seconds=2.0) as strict:
        assert_error(
            *post(strict, payload(encode(speech(4.0), 16_000, "FLAC"))), 400, "longer than the 2 s limit"
        )


def test_overload_is_503_with_retry_after(settings: Settings) -> None:
    with serving(settings, max_concurrent=1, max_queue=0) as (busy, runtime):
        original = runtime.analyse
        gate, entered = threading.Event(), threading.Event()
        results: list[int] = []

        def slow(audio: bytes | BinaryIO, deadline: float | None = None) -> Detection:
            entered.set()
            gate.wait(10)
            return original(audio, deadline)

        runtime.analyse = slow  # type: ignore[method-assign]
        worker = threading.Thread(target=lambda: results.append(post(busy, payload(SAMPLE))[0]))
        worker.start()
        assert entered.wait(10)
        status, body = post(busy, payload(SAMPLE))
        gate.set()
        worker.join(10)
        assert_error(status, body, 503, "busy")
        assert results == [200]
        assert "voicecheck_queue_rejections_total 1" in busy.get("/metrics").text


def test_overload_response_carries_retry_after(settings: Settings) -> None:
    with serving(settings, max_concurrent=1, max_queue=0) as (busy, runtime):
        runtime.limiter.pending = 1  # as if one request held the only slot
        response = busy.post("/api/voice-detection", json=payload(SAMPLE), headers={"x-api-key": API_KEY})
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()


def test_rate_limit_is_429_with_retry_after(settings: Settings) -> None:
    with make_client(settings, rate_limit_per_minute=2) as limited:
        assert post(limited, payload(SAMPLE))[0] == 200
        assert post(limited, payload(SAMPLE))[0] == 200
        response = limited.post("/api/voice-detection", json=payload(SAMPLE), headers={"x-api-key": API_KEY})
        assert_error(response.status_code, response.json(), 429, "2 requests a minute")
        assert response.headers["retry-after"].isdigit()
        assert post(limited, payload(SAMPLE), key="wrong")[0] == 401  # the key is checked first


def test_not_ready_is_503(settings: Settings) -> None:
    with serving(settings) as (client, runtime):
        runtime.ready = False
        assert_error(*post(client, payload(SAMPLE)), 503, "not ready")
        assert client.get("/health").status_code == 503


def test_internal_error_is_500_without_internals(settings: Settings) -> None:
    with serving(settings) as (client, runtime):

        def broken(audio: bytes | BinaryIO, deadline: float | None = None) -> Detection:
            raise RuntimeError("secret path /opt/internal/thing")

        runtime.analyse = broken  # type: ignore[method-assign]
        response = client.post("/api/voice-detection", json=payload(SAMPLE), headers={"x-api-key": API_KEY})
        assert_error(response.status_code, response.json(), 500, "internal error")
        assert "secret" not in response.text
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.headers["x-request-id"]) == 16


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    response = client.get("/nope")
    assert_error(response.status_code, response.json(), 404, "Not Found")
    response = client.get("/api/voice-detection")
    assert_error(response.status_code, response.json(), 405, "Method Not Allowed")


def test_health_reports_random_weights_and_vote_provenance(client: TestClient, tiny_artifacts: Path) -> None:
    response = client.get("/health")
    body = response.json()
    manifest = Artifacts(tiny_artifacts).manifest()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["model"]["random_weights"] is True
    assert body["model"]["graph_sha256"] == manifest.graph.sha256
    assert body["model"]["layers"] == manifest.source.layers == 2  # every layer of the tiny model
    assert body["votes"]["calibrated"] is False
    assert "uncalibrated" in body["votes"]["warning"]


def test_every_response_of_a_random_weights_graph_says_so(client: TestClient) -> None:
    responses = [
        client.get("/health"),
        client.get("/nope"),
        client.post("/api/voice-detection", json=payload(SAMPLE), headers={"x-api-key": API_KEY}),
        client.post("/api/voice-detection", json=payload(SAMPLE)),
    ]
    assert [r.status_code for r in responses] == [200, 404, 200, 401]
    assert all(r.headers["x-voicecheck-weights"].startswith("random-init") for r in responses)


def test_every_verdict_says_where_the_weights_came_from(settings: Settings) -> None:
    files = {"file": ("clip.mp3", SAMPLE, "audio/mpeg"), "language": (None, "English", None)}
    with serving(settings) as (client, runtime):
        random_init = post(client, payload(SAMPLE))[1]
        uploaded = client.post("/api/voice-detection/file", files=files, headers={"x-api-key": API_KEY})
        pretrained_manifest = replace(runtime.manifest, source=ModelOrigin(kind="pretrained"))
        runtime.detector = replace(runtime.detector, manifest=pretrained_manifest)
        pretrained = post(client, payload(SAMPLE))[1]
    assert random_init["weights"] == "random-init"
    assert uploaded.json()["weights"] == "random-init"
    assert pretrained["weights"] == "pretrained"
    assert {k: v for k, v in pretrained.items() if k != "weights"} == {
        k: v for k, v in random_init.items() if k != "weights"
    }


def test_a_manifest_with_an_unknown_weights_origin_is_refused(tiny_artifacts: Path, tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["source"]["kind"] = "fine-tuned"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactsError, match="pretrained or random-init"):
        Artifacts(folder).load()


def test_pretrained_graph_answers_without_the_warning(settings: Settings) -> None:
    with serving(settings) as (client, runtime):
        pretrained_manifest = replace(runtime.manifest, source=ModelOrigin(kind="pretrained"))
        runtime.detector = replace(runtime.detector, manifest=pretrained_manifest)
        response = client.get("/health")
    assert response.json()["status"] == "ok"
    assert "x-voicecheck-weights" not in response.headers


def test_openapi_describes_the_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/voice-detection"]["post"]
    assert {"200", "400", "401", "413", "415", "503"} <= set(operation["responses"])
    schema = spec["components"]["schemas"]["Request"]
    assert schema["required"] == ["language", "audioFormat", "audioBase64"]
    detection = spec["components"]["schemas"]["Detection"]
    assert "weights" in detection["required"]
    assert detection["properties"]["weights"]["enum"] == ["pretrained", "random-init"]


def test_openapi_is_built_from_every_http_route(client: TestClient) -> None:
    from starlette.routing import Route

    paths = client.get("/openapi.json").json()["paths"]
    routes = [r for r in client.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert {r.path for r in routes} == set(paths)
    for route in routes:
        assert set(paths[route.path]) == {m.lower() for m in route.methods or ()} - {"head"}


def test_security_headers_and_request_id(client: TestClient) -> None:
    response = client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.headers["x-request-id"]) == 16
    assert "server" not in {k.lower() for k in response.headers}


def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    post(client, payload(SAMPLE))
    post(client, payload(SAMPLE), key="bad")
    text = client.get("/metrics").text
    assert 'voicecheck_requests_total{route="/api/voice-detection",status="200"} 1' in text
    assert 'voicecheck_requests_total{route="/api/voice-detection",status="401"} 1' in text
    assert "voicecheck_inference_seconds_count 1" in text


def test_metrics_label_unknown_paths_as_one_route(client: TestClient) -> None:
    for path in ("/admin", "/wp-login.php", "/api/voice-detection/x"):
        assert client.get(path).status_code == 404
    assert client.get("/api/voice-detection").status_code == 405
    text = client.get("/metrics").text
    assert 'voicecheck_requests_total{route="other",status="404"} 3' in text
    assert 'voicecheck_requests_total{route="/api/voice-detection",status="405"} 1' in text
    assert "wp-login" not in text


def test_logs_never_contain_audio_or_keys(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    body = payload(SAMPLE)
    post(client, body)
    post(client, body, key="wrong-key-value")
    text = caplog.text
    assert "request_id" in text
    assert body["audioBase64"][:40] not in text
    assert API_KEY not in text
    assert "wrong-key-value" not in text


def test_votes_for_another_graph_are_refused(settings: Settings, tmp_path: Path) -> None:
    folder = with_foreign_votes(settings.artifacts_dir, tmp_path / "mixed")
    with pytest.raises(ArtifactsError, match="another graph"), make_client(settings, artifacts_dir=folder):
        pass
