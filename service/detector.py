"""The pipeline after decoding: windows -> features -> votes -> verdict per window and per clip."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from service.audio import SAMPLE_RATE
from service.errors import AudioError
from service.features import FEATURE_NAMES, hidden_state_variance, signal_features
from service.model import Encoder
from service.verdict import Verdict, VoteRules

# The shortest window analysed after full ones: below it a clip's remainder is left out (it would
# weigh little in the clip's mean and give a noisy segment verdict). Same as the shortest clip.
MIN_WINDOW_SECONDS = 0.5


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
    """Near-equal windows no longer than ``window_seconds`` covering the whole clip (export's
    calibration windows; the detector analyses ``analysis_windows``)."""
    count = max(1, math.ceil(samples / (window_seconds * SAMPLE_RATE)))
    edges = np.linspace(0, samples, count + 1).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def analysis_windows(samples: int, window_seconds: float) -> list[tuple[int, int]]:
    """Consecutive windows of exactly ``window_seconds`` from the start, then the remainder as a
    last, shorter window; a remainder under ``MIN_WINDOW_SECONDS`` after full windows is left out.

    Fixed-length, so a live stream can analyse each window the moment its last sample arrives and
    still end with the same windows, and the same clip verdict, as the whole file.
    """
    size = window_samples(window_seconds)
    full = samples // size
    windows = [(i * size, (i + 1) * size) for i in range(full)]
    if not full or samples - full * size >= MIN_WINDOW_SECONDS * SAMPLE_RATE:
        windows.append((full * size, samples))
    return windows


def window_samples(window_seconds: float) -> int:
    return int(window_seconds * SAMPLE_RATE)


def analyse_window(encoder: Encoder, piece: np.ndarray, start: int) -> Window:
    """One window's features; ``start`` is its first sample's index in the clip."""
    features = signal_features(piece)
    features["hidden_state_variance"] = hidden_state_variance(encoder(piece))
    end = start + len(piece)
    if not all(math.isfinite(value) for value in features.values()):
        raise AudioError(
            f"audio could not be analysed at {start / SAMPLE_RATE:.1f}-{end / SAMPLE_RATE:.1f} s"
        )
    return Window(start / SAMPLE_RATE, end / SAMPLE_RATE, features)


def window_features(encoder: Encoder, waveform: np.ndarray, window_seconds: float) -> list[Window]:
    return [
        analyse_window(encoder, waveform[start:end], start)
        for start, end in analysis_windows(len(waveform), window_seconds)
    ]


def clip_features(windows: list[Window]) -> dict[str, float]:
    """Duration-weighted mean of the window features."""
    weights = np.array([w.end - w.start for w in windows])
    return {
        name: float(np.average([w.features[name] for w in windows], weights=weights))
        for name in FEATURE_NAMES
    }


def combine(rules: VoteRules, windows: list[Window], samples: int) -> Detection:
    """The clip's detection from its windows' features (a live stream keeps only these)."""
    segments = tuple((w, rules.decide(w.features)) for w in windows)
    return Detection(rules.decide(clip_features(windows)), segments, samples / SAMPLE_RATE)


def detect(encoder: Encoder, rules: VoteRules, waveform: np.ndarray, window_seconds: float) -> Detection:
    return combine(rules, window_features(encoder, waveform, window_seconds), len(waveform))
