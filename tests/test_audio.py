from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.detector.audio import SAMPLE_RATE, AudioLimits, decode_audio
from service.detector.errors import AudioError
from tests.conftest import DATA, encode, speech

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", None), ("OGG", "VORBIS"), ("MP3", None)]
)
@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
def test_formats_and_rates_decode_to_16k_mono(fmt: str, subtype: str | None, rate: int) -> None:
    if fmt == "MP3" and rate == 16_000:
        rate = 22_050
    clip = speech(2.0)
    resampled = np.interp(np.arange(int(2.0 * rate)) / rate, np.arange(len(clip)) / SAMPLE_RATE, clip)
    waveform = decode_audio(encode(resampled.astype(np.float32), rate, fmt, subtype))
    assert waveform.dtype == np.float32
    assert waveform.ndim == 1
    assert abs(len(waveform) / SAMPLE_RATE - 2.0) < 0.1


def test_stereo_and_many_channels_are_mixed_down() -> None:
    clip = speech(1.5)
    stereo = np.stack([clip, 0.5 * clip], axis=1)
    assert decode_audio(encode(stereo, 48_000, "WAV")).ndim == 1
    six = np.repeat(clip[:, None], 6, axis=1)
    assert decode_audio(encode(six, 16_000, "WAV")).ndim == 1


def test_real_mp3_from_espeak_and_lame_decodes() -> None:
    waveform = decode_audio((DATA / "sample-espeak.mp3").read_bytes())
    assert len(waveform) / SAMPLE_RATE > 2.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not audio at all" * 20, "could not decode"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff" * 50, "could not decode"),
    ],
)
def test_garbage_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        decode_audio(data)


def test_too_short_silent_and_too_long_are_refused() -> None:
    with pytest.raises(AudioError, match="at least"):
        decode_audio(encode(speech(0.2), 16_000, "WAV"))
    with pytest.raises(AudioError, match="silent"):
        decode_audio(encode(np.zeros(32_000, dtype=np.float32), 16_000, "WAV"))
    with pytest.raises(AudioError, match="longer than"):
        decode_audio(encode(speech(5.0), 16_000, "WAV"), AudioLimits(max_seconds=3.0))


@pytest.mark.parametrize("kept", [0.25, 0.5, 0.75])
def test_truncated_mp3_decodes_only_what_is_there(kept: float) -> None:
    data = (DATA / "sample-espeak.mp3").read_bytes()
    whole = len(decode_audio(data))
    part = len(decode_audio(data[: int(len(data) * kept)]))
    assert abs(part / whole - kept) < 0.1


def test_truncated_file_still_decodes_what_is_there() -> None:
    data = encode(speech(3.0), 16_000, "WAV")
    waveform = decode_audio(data[: len(data) // 2])
    assert 1.0 < len(waveform) / SAMPLE_RATE < 2.0


def test_hours_of_audio_are_refused_without_decoding_them(monkeypatch: pytest.MonkeyPatch) -> None:
    ten_minutes = encode(np.tile(speech(10.0)[::2], 60), 8_000, "FLAC")
    blocks: list[int] = []
    real_read = decode_audio.__globals__["_read_resampled"]

    def counting(stream, limits):  # type: ignore[no-untyped-def]
        blocks.append(stream.frames)
        return real_read(stream, limits)

    monkeypatch.setitem(decode_audio.__globals__, "_read_resampled", counting)
    with pytest.raises(AudioError, match="longer than the 60 s limit"):
        decode_audio(ten_minutes, AudioLimits(max_seconds=60.0))
    assert blocks == [], "the header's frame count should refuse it before any decoding"


def test_streams_without_a_length_stop_at_the_limit() -> None:
    from service.detector.audio import _read_resampled

    class Endless:
        samplerate = 16_000
        frames = 0

        def read(self, frames: int, **_: object) -> np.ndarray:
            return np.full((frames, 1), 0.1, dtype=np.float32)

    with pytest.raises(AudioError, match="longer than"):
        list(_read_resampled(Endless(), AudioLimits(max_seconds=10.0)))


def test_channel_and_rate_bounds() -> None:
    with pytest.raises(AudioError, match="channels"):
        decode_audio(encode(np.zeros((16_000, 9), dtype=np.float32) + 0.1, 16_000, "WAV"))
    with pytest.raises(AudioError, match="sample rate"):
        decode_audio(encode(speech(1.0)[:2000], 2_000, "WAV"))


@pytest.mark.parametrize("value", [1e30, np.inf, np.nan])
def test_corrupt_sample_values_are_refused(value: float) -> None:
    samples = speech(1.0)
    samples[100:200] = value
    with pytest.raises(AudioError, match="corrupt"):
        decode_audio(encode(samples, 16_000, "WAV", "FLOAT"))


def test_modest_overs_in_float_files_are_accepted() -> None:
    waveform = decode_audio(encode(speech(1.0) * 6.0, 16_000, "WAV", "FLOAT"))
    assert float(np.max(np.abs(waveform))) > 1.0


def test_decoder_notes_stay_out_of_stderr_and_everything_else_reaches_it() -> None:
    script = (
        "import ctypes, sys, logging\n"
        "from service.detector.audio import decode_audio, quiet_decoder_notes\n"
        "quiet_decoder_notes()\n"
        "logging.basicConfig()\n"
        f"decode_audio(open({str(DATA / 'sample-espeak.mp3')!r}, 'rb').read())\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "libc.write(2, b'[src/libmpg123/layer3.c:1] error: a note\\n', 41)\n"
        "libc.write(2, b'a C library complaint\\n', 22)\n"
        "logging.getLogger('t').warning('python log line')\n"
        "import time; time.sleep(0.2)\n"
    )
    loud = subprocess.run(
        [sys.executable, "-c", script.replace("quiet_decoder_notes()\n", "")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    quiet = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "libmpg123" in loud.stderr
    assert "libmpg123" not in quiet.stderr
    assert "a C library complaint" in quiet.stderr
    assert "python log line" in quiet.stderr


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("AIFF", "PCM_16"),
        ("AU", "PCM_16"),
        ("CAF", "PCM_16"),
        ("W64", "PCM_16"),
        ("RF64", "PCM_16"),
        ("NIST", "PCM_16"),
        ("IRCAM", "PCM_16"),
        ("VOC", "PCM_16"),
        ("PVF", "PCM_16"),
        ("MAT5", "PCM_16"),
        ("PAF", "PCM_16"),
        ("SVX", "PCM_16"),
        ("HTK", "PCM_16"),
        ("SDS", "PCM_16"),
        ("AVR", "PCM_16"),
        ("MPC2K", "PCM_16"),
        ("WVE", "ALAW"),
    ],
)
def test_containers_outside_the_contract_are_refused(fmt: str, subtype: str) -> None:
    with pytest.raises(AudioError, match="send MP3, WAV, FLAC or OGG"):
        decode_audio(encode(speech(1.0), SAMPLE_RATE, fmt, subtype))


@pytest.mark.parametrize("offset", [0.3, -0.5, 0.99])
def test_a_constant_offset_is_silence(offset: float) -> None:
    dc = np.full(2 * SAMPLE_RATE, offset, dtype=np.float32)
    with pytest.raises(AudioError, match="silent"):
        decode_audio(encode(dc, SAMPLE_RATE, "WAV"))
    quiet_tone = dc + 1e-3 * np.sin(np.arange(len(dc)) / 5).astype(np.float32)
    assert len(decode_audio(encode(quiet_tone, SAMPLE_RATE, "WAV", "FLOAT"))) == len(dc)
