"""Decode any soundfile-readable bytes to 16 kHz mono float32, streaming and bounded."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from service.errors import AudioError

SAMPLE_RATE = 16_000
_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class AudioLimits:
    max_seconds: float = 300.0
    min_seconds: float = 0.5
    max_channels: int = 8
    min_sample_rate: int = 4_000
    max_sample_rate: int = 192_000
    silence_peak: float = 1e-4  # -80 dBFS: nothing a microphone or codec leaves audible
    corrupt_peak: float = 16.0  # +24 dBFS: no real decoder overshoots this far; corrupt streams do


def decode_audio(data: bytes, limits: AudioLimits | None = None) -> np.ndarray:
    """Return the clip as float32 mono at 16 kHz; raise AudioError for anything unusable."""
    limits = limits or AudioLimits()
    if not data:
        raise AudioError("audio is empty")
    try:
        with sf.SoundFile(io.BytesIO(data)) as stream:
            _check_header(stream, limits)
            waveform = _read_resampled(stream, limits)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        raise AudioError("could not decode audio: send MP3, WAV, FLAC or OGG bytes") from exc
    _check_content(waveform, limits)
    return waveform


def _check_header(stream: sf.SoundFile, limits: AudioLimits) -> None:
    if not limits.min_sample_rate <= stream.samplerate <= limits.max_sample_rate:
        raise AudioError(
            f"sample rate {stream.samplerate} Hz is outside "
            f"{limits.min_sample_rate}-{limits.max_sample_rate} Hz"
        )
    if not 1 <= stream.channels <= limits.max_channels:
        raise AudioError(f"{stream.channels} channels; at most {limits.max_channels} are allowed")
    claimed = stream.frames / stream.samplerate if 0 < stream.frames < 2**62 else 0.0
    if claimed > limits.max_seconds + 1.0:
        raise _too_long(limits)


def _read_resampled(stream: sf.SoundFile, limits: AudioLimits) -> np.ndarray:
    resampler = soxr.ResampleStream(stream.samplerate, SAMPLE_RATE, 1, dtype="float32")
    max_samples = int((limits.max_seconds + 1.0) * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    # read() rather than blocks(): blocks() trusts the header's frame count and pads a truncated
    # stream with whatever its buffer held.
    while len(block := stream.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
        if not np.all(np.abs(block) <= limits.corrupt_peak):  # also catches NaN
            raise AudioError("audio is corrupt: it decodes to samples far beyond full scale")
        chunk = resampler.resample_chunk(block.mean(axis=1))
        total += len(chunk)
        if total > max_samples:
            raise _too_long(limits)
        chunks.append(chunk)
    chunks.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _check_content(waveform: np.ndarray, limits: AudioLimits) -> None:
    seconds = len(waveform) / SAMPLE_RATE
    if seconds < limits.min_seconds:
        raise AudioError(f"audio is {seconds:.2f} s long; at least {limits.min_seconds:g} s is needed")
    if seconds > limits.max_seconds:
        raise _too_long(limits)
    if float(np.max(np.abs(waveform))) < limits.silence_peak:
        raise AudioError("audio is silent")


def _too_long(limits: AudioLimits) -> AudioError:
    return AudioError(f"audio is longer than the {limits.max_seconds:g} s limit")
