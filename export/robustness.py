"""The perturbations a verdict must survive: level changes, white noise, low-bitrate re-encoding,
a telephone channel (8 kHz and back)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import soundfile as sf
import soxr

from service.detector.audio import SAMPLE_RATE, decode_audio

Perturbation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def mp3_32k(clip: np.ndarray) -> bytes:
    """A constant-bitrate MP3 of about 32 kbit/s at 16 kHz (libsndfile's LAME)."""
    buffer = io.BytesIO()
    sf.write(buffer, clip, SAMPLE_RATE, format="MP3", bitrate_mode="CONSTANT", compression_level=0.85)
    return buffer.getvalue()


def recoded_32k(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return decode_audio(mp3_32k(clip))[: len(clip)]


def white_noise_20db(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(len(clip)) * np.sqrt(np.mean(clip**2) / 100)
    return np.asarray(clip + noise, dtype=np.float32)


def telephone_8k(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    narrow = soxr.resample(clip, SAMPLE_RATE, 8_000)
    return np.asarray(soxr.resample(narrow, 8_000, SAMPLE_RATE)[: len(clip)], dtype=np.float32)


def _gain(db: float) -> Perturbation:
    return lambda clip, rng: np.asarray(clip * 10 ** (db / 20), dtype=np.float32)


PERTURBATIONS: dict[str, Perturbation] = {
    "-20 dB": _gain(-20.0),
    "+6 dB": _gain(6.0),
    "20 dB SNR white noise": white_noise_20db,
    "32 kbit/s MP3": recoded_32k,
    "8 kHz telephone band": telephone_8k,
}
