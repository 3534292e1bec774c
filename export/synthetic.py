"""Seeded speech-like audio for offline use: INT8 range-calibration windows and labelled toy clips.

Voiced syllables are additive harmonics under three formant bumps, separated by pauses and
fricative noise. ``natural=True`` adds what people do and plain synthesis does not: pitch
jitter, amplitude shimmer, breath noise and uneven timing. It is a stand-in, never a
substitute, for recorded speech.
"""

from __future__ import annotations

import numpy as np

from service.detector.audio import SAMPLE_RATE


def speech_like(seconds: float, seed: int, natural: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = []
    total = int(seconds * SAMPLE_RATE)
    base_f0 = rng.uniform(95, 230)
    formants = rng.uniform([300, 900, 2200], [800, 1800, 3000])
    while sum(len(p) for p in pieces) < total:
        pieces.append(_syllable(rng, base_f0, formants, natural))
        pieces.append(_gap(rng, natural))
    clip = np.concatenate(pieces)[:total]
    return np.asarray(0.3 * clip / (np.max(np.abs(clip)) + 1e-9), dtype=np.float32)


def labelled_clips(count: int, seconds: float, seed: int) -> list[tuple[np.ndarray, bool]]:
    """(clip, is_natural) pairs, alternating classes."""
    return [(speech_like(seconds, seed + i, natural=i % 2 == 0), i % 2 == 0) for i in range(count)]


def _syllable(rng: np.random.Generator, base_f0: float, formants: np.ndarray, natural: bool) -> np.ndarray:
    n = int(rng.uniform(0.12, 0.3 if natural else 0.2) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    glide = np.linspace(1.0, rng.uniform(0.85, 1.15), n)
    f0 = base_f0 * glide
    if natural:
        f0 = f0 * (1 + 0.02 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    shifted = formants * rng.uniform(0.85, 1.15, size=3)
    voice = np.zeros(n)
    for k in range(1, int(4000 / base_f0)):
        gain = sum(np.exp(-((((k * base_f0) - f) / 150.0) ** 2)) for f in shifted) + 0.02
        voice += gain / k**0.5 * np.sin(k * phase)
    envelope = np.sqrt(np.clip(np.sin(np.pi * t / t[-1]), 0.0, None))
    if natural:
        envelope *= 1 + 0.1 * rng.standard_normal(n).cumsum() / np.sqrt(n)
        voice += 0.05 * rng.standard_normal(n) * np.max(np.abs(voice))
    return np.asarray(voice * envelope)


def _gap(rng: np.random.Generator, natural: bool) -> np.ndarray:
    n = int(rng.uniform(0.03, 0.25) * SAMPLE_RATE)
    if rng.random() < 0.4:
        hiss = np.diff(rng.standard_normal(n + 1)) * 0.3
        return hiss * np.hanning(n)
    floor = 0.01 if natural else 0.0005
    return floor * rng.standard_normal(n)
