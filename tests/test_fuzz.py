"""Property-based checks: whatever arrives, the answer is a result or a clear 4xx, never a crash.

The suite runs the "ci" profile (tests/conftest.py); scripts/fuzz runs the long "fuzz" profile."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from service.detector.audio import AudioLimits, decode_audio
from service.detector.errors import AudioError
from service.web.contract import parse_request
from service.web.errors import ClientError
from service.web.settings import Settings
from tests.conftest import API_KEY, encode, payload, speech

LANGUAGES = ("Tamil", "English", "Hindi", "Malayalam", "Telugu")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
SEEDS = {
    "wav": encode(speech(1.0), 16_000, "WAV"),
    "flac": encode(speech(1.0), 16_000, "FLAC"),
    "ogg": encode(speech(1.0), 16_000, "OGG", "VORBIS"),
    "mp3": encode(speech(1.0), 16_000, "MP3"),
}


@st.composite
def mutated_audio(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[: cut if draw(st.booleans()) else len(data)])


@given(body=json_values)
def test_any_json_is_parsed_or_refused_with_a_client_error(body: object) -> None:
    try:
        parse_request(json.dumps(body).encode(), LANGUAGES)
    except ClientError as exc:
        assert exc.status_code == 400
        assert exc.message


@given(data=st.binary(max_size=2048))
def test_any_bytes_decode_or_raise_audio_error(data: bytes) -> None:
    try:
        waveform = decode_audio(data)
    except AudioError as exc:
        assert exc.message
    else:
        assert waveform.dtype == np.float32


@given(data=mutated_audio())
def test_mutated_audio_decodes_or_raises_audio_error(data: bytes) -> None:
    try:
        waveform = decode_audio(data, AudioLimits(max_seconds=30.0))
    except AudioError:
        return
    assert waveform.ndim == 1
    assert np.all(np.isfinite(waveform))


@pytest.fixture(scope="module")
def fuzz_client(settings: Settings) -> Iterator[TestClient]:
    from service.web.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@hypothesis_settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(audio=mutated_audio(), language=st.sampled_from(["English", "english", "Klingon", ""]))
def test_endpoint_answers_mutated_audio_with_200_or_400(
    fuzz_client: TestClient, audio: bytes, language: str
) -> None:
    response = fuzz_client.post(
        "/api/voice-detection", json=payload(audio, language=language), headers={"x-api-key": API_KEY}
    )
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert body["status"] == ("success" if response.status_code == 200 else "error")
