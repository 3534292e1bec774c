"""The pipeline after decoding: windows -> features -> votes -> verdict per window and per clip."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from service.audio import SAMPLE_RATE
from service.errors import AudioError
from service.model import Encoder
from service.verdict import Verdict, VoteRules
from service.votes import HIDDEN_MEASUREMENTS, SIGNAL_MEASUREMENTS, hidden_measurements, signal_measurements


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    features: dict[str, float]


@dataclass(frozen=True)
class Detection:
    verdict: Verdict
    segments: tuple[tuple[Window, Verdict], ...]
    seconds: float


def split_windows(samples: int, window_seconds: float) -> list[tuple[int, int]]:
    """Near-equal windows no longer than ``window_seconds`` covering the whole clip."""
    count = max(1, math.ceil(samples / (window_seconds * SAMPLE_RATE)))
    edges = np.linspace(0, samples, count + 1).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def window_features(encoder: Encoder, waveform: np.ndarray, window_seconds: float) -> list[Window]:
    windows = []
    for start, end in split_windows(len(waveform), window_seconds):
        piece = waveform[start:end]
        features = signal_measurements(piece)
        features.update(hidden_measurements(encoder(piece)))
        if not all(math.isfinite(value) for value in features.values()):
            seconds = f"{start / SAMPLE_RATE:.1f}-{end / SAMPLE_RATE:.1f} s"
            raise AudioError(f"audio could not be analysed at {seconds}")
        windows.append(Window(start / SAMPLE_RATE, end / SAMPLE_RATE, features))
    return windows


def clip_features(windows: list[Window]) -> dict[str, float]:
    """Duration-weighted mean of the window measurements (hidden ones over the encoded windows)."""
    out = {}
    for names in (SIGNAL_MEASUREMENTS, HIDDEN_MEASUREMENTS):
        present = [w for w in windows if names[0] in w.features]
        weights = np.array([w.end - w.start for w in present])
        for name in names:
            out[name] = float(np.average([w.features[name] for w in present], weights=weights))
    return out


def detect(encoder: Encoder, rules: VoteRules, waveform: np.ndarray, window_seconds: float) -> Detection:
    windows = window_features(encoder, waveform, window_seconds)
    segments = tuple((w, rules.decide(w.features)) for w in windows)
    return Detection(rules.decide(clip_features(windows)), segments, len(waveform) / SAMPLE_RATE)
