"""A labelled corpus's features (its clips: ``service.labels.read_labels``)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.detector.audio import decode_audio
from service.detector.encoder import HiddenStates
from service.detector.measurements import (
    HIDDEN_MEASUREMENTS,
    MEASUREMENTS,
    SIGNAL_MEASUREMENTS,
    signal_measurements,
)
from service.detector.windows import EncoderBudget, analysis_windows, clip_features, window_features
from service.labels import AI, Clip


@dataclass(frozen=True)
class FeatureTable:
    clips: tuple[Clip, ...]
    values: np.ndarray  # clips x MEASUREMENTS

    @property
    def is_ai(self) -> np.ndarray:
        return np.array([clip.label == AI for clip in self.clips])

    @property
    def groups(self) -> list[str]:
        return [clip.group for clip in self.clips]

    @property
    def families(self) -> list[str]:
        return [clip.family or clip.group for clip in self.clips]

    def row(self, index: int) -> dict[str, float]:
        return dict(zip(MEASUREMENTS, self.values[index].tolist(), strict=True))


def feature_row(
    encoder: HiddenStates, waveform: np.ndarray, window_seconds: float, max_encoded_seconds: float = math.inf
) -> list[float]:
    """The clip's measurements in MEASUREMENTS order, exactly as the service computes them when
    its deadline affords wav2vec2 ``max_encoded_seconds`` of the clip."""
    budget = EncoderBudget(audio_seconds=max_encoded_seconds)
    features = clip_features(window_features(encoder, waveform, window_seconds, budget))
    return [features[name] for name in MEASUREMENTS]


def compute_features(
    clips: list[Clip],
    encoder: HiddenStates,
    window_seconds: float,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    cache: Path | None = None,
    max_encoded_seconds: float = math.inf,
) -> FeatureTable:
    """Measurements of every clip; with ``cache``, reuse (and write) an .npz computed for the same
    clips, graph, window length and encoder allowance (the caller puts the graph's identity in the
    file name). When only the signal measurements changed, the cached hidden-state ones (the
    wav2vec2 pass) are kept and the signal ones recomputed."""
    key = np.array([f"{c.path}|{window_seconds}|{max_encoded_seconds}" for c in clips])
    if cache is not None and transform is None and cache.is_file():
        stored = np.load(cache)
        names = list(stored["names"]) if "names" in stored else []
        if np.array_equal(stored["key"], key) and names == list(MEASUREMENTS):
            return FeatureTable(tuple(clips), stored["values"])
        if np.array_equal(stored["key"], key) and set(HIDDEN_MEASUREMENTS) <= set(names):
            hidden = stored["values"][:, [names.index(m) for m in HIDDEN_MEASUREMENTS]]
            table = FeatureTable(tuple(clips), _with_signal(clips, hidden, window_seconds))
            np.savez(cache, key=key, names=np.array(MEASUREMENTS), values=table.values)
            return table
    table = _compute(clips, encoder, window_seconds, transform, max_encoded_seconds)
    if cache is not None and transform is None:
        np.savez(cache, key=key, names=np.array(MEASUREMENTS), values=table.values)
    return table


def signal_row(waveform: np.ndarray, window_seconds: float) -> list[float]:
    """The clip's signal measurements in SIGNAL_MEASUREMENTS order, as the service computes them
    (duration-weighted mean over the analysis windows)."""
    spans = analysis_windows(len(waveform), window_seconds)
    rows = [signal_measurements(waveform[start:end]) for start, end in spans]
    weights = [end - start for start, end in spans]
    return [float(np.average([r[name] for r in rows], weights=weights)) for name in SIGNAL_MEASUREMENTS]


def _with_signal(clips: list[Clip], hidden: np.ndarray, window_seconds: float) -> np.ndarray:
    signal = []
    for number, clip in enumerate(clips, 1):
        signal.append(signal_row(decode_audio(clip.path.read_bytes()), window_seconds))
        if number % 200 == 0 or number == len(clips):
            print(f"signal measurements: {number}/{len(clips)} clips", file=sys.stderr)
    values = np.hstack([np.array(signal, dtype=np.float64), hidden])
    return values[:, [[*SIGNAL_MEASUREMENTS, *HIDDEN_MEASUREMENTS].index(m) for m in MEASUREMENTS]]


def _compute(
    clips: list[Clip],
    encoder: HiddenStates,
    window_seconds: float,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    max_encoded_seconds: float,
) -> FeatureTable:
    rows = []
    for number, clip in enumerate(clips, 1):
        waveform = decode_audio(clip.path.read_bytes())
        if transform is not None:
            waveform = transform(waveform)
        rows.append(feature_row(encoder, waveform, window_seconds, max_encoded_seconds))
        if number % 50 == 0 or number == len(clips):
            print(f"features: {number}/{len(clips)} clips", file=sys.stderr)
    return FeatureTable(tuple(clips), np.array(rows, dtype=np.float64))
