"""The one registry of the five votes: name, readable label, measurements and how to compute them.

The windows, the vote rule (votes.py), vote calibration and the docs all read this list. Signal
votes compute their measurements from a window's waveform (through one shared SignalAnalysis); the
hidden-state vote from the wav2vec2 last hidden state of that window.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.detector.features import (
    BAND_EDGES_HZ,
    SMOOTHINGS,
    SignalAnalysis,
    crossing_measurements,
    energy_measurements,
    hidden_variance_measurements,
    temporal_measurements,
    variance_measurements,
)


@dataclass(frozen=True)
class VoteSpec:
    name: str
    label: str
    source: str  # "signal" (from the waveform) or "hidden" (from encoder(waveform))
    measurements: tuple[str, ...]
    compute: Callable[[Any], dict[str, float]]


VOTES: tuple[VoteSpec, ...] = (
    VoteSpec(
        "audio_energy",
        "audio energy",
        "signal",
        (
            *(f"band_{int(lo)}_{int(hi)}" for lo, hi in itertools.pairwise(BAND_EDGES_HZ)),
            "spectral_tilt",
            "spectral_flux",
            "flux_peakiness",
            "cepstral_variance",
            "cepstral_delta_ratio",
            "tonal_lines_db",
            "loud_level_spread",
            "level_range",
        ),
        energy_measurements,
    ),
    VoteSpec(
        "audio_variance",
        "audio variance",
        "signal",
        (
            "cepstral_peak_prominence",
            "aperiodicity",
            "harmonics_to_noise_db",
            "log_flatness",
            "log_flatness_spread",
            "voiced_share",
            "upper_band_periodicity",
            "group_delay_spread",
        ),
        variance_measurements,
    ),
    VoteSpec(
        "zero_crossing_rate",
        "zero-crossing rate",
        "signal",
        tuple(f"zcr_{w}_{kind}" for w in SMOOTHINGS for kind in ("mean", "spread")),
        crossing_measurements,
    ),
    VoteSpec(
        "temporal_variation",
        "temporal variation",
        "signal",
        (
            "jitter",
            "pitch_range",
            "shimmer_db",
            "pitch_microprosody",
            "syllabic_modulation",
            "pause_share",
            "pause_rate",
            "pitch_jump_share",
            "syllable_regularity",
            "pause_flatness",
        ),
        temporal_measurements,
    ),
    VoteSpec(
        "hidden_state_variance",
        "wav2vec2 hidden-state variance",
        "hidden",
        (
            "hidden_variance_share",
            "hidden_share_q10",
            "hidden_share_q50",
            "hidden_share_q90",
            "hidden_participation",
            "hidden_lag1",
        ),
        hidden_variance_measurements,
    ),
)
VOTE_NAMES = tuple(v.name for v in VOTES)
BY_NAME = {v.name: v for v in VOTES}
SIGNAL_MEASUREMENTS = tuple(m for v in VOTES if v.source == "signal" for m in v.measurements)
HIDDEN_MEASUREMENTS = tuple(m for v in VOTES if v.source == "hidden" for m in v.measurements)
MEASUREMENTS = SIGNAL_MEASUREMENTS + HIDDEN_MEASUREMENTS


def _checked(spec: VoteSpec, values: dict[str, float]) -> dict[str, float]:
    if tuple(values) != spec.measurements:
        raise AssertionError(f"{spec.name} computed {tuple(values)}, registry says {spec.measurements}")
    return values


def signal_measurements(waveform: np.ndarray) -> dict[str, float]:
    """Every signal vote's measurements for one analysis window (16 kHz mono)."""
    analysis = SignalAnalysis.of(waveform)
    out: dict[str, float] = {}
    for spec in VOTES:
        if spec.source == "signal":
            out.update(_checked(spec, spec.compute(analysis)))
    return out


def hidden_measurements(hidden: np.ndarray) -> dict[str, float]:
    """The hidden-state vote's measurements from encoder(window) (frames x dims)."""
    out: dict[str, float] = {}
    for spec in VOTES:
        if spec.source == "hidden":
            out.update(_checked(spec, spec.compute(hidden)))
    return out
