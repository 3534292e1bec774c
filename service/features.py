"""The five loudness-invariant features that the votes compare with learned thresholds.

Every feature is a ratio, a difference of logs, a rate or a cosine, so scaling a clip by any
gain leaves it unchanged.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FEATURE_NAMES = (
    "audio_energy",
    "audio_variance",
    "zero_crossing_rate",
    "temporal_variation",
    "hidden_state_variance",
)

FRAME = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
ACTIVE_DB = 40.0  # frames within this many dB of the loud frames count as sound, not pauses
_TINY = 1e-12


def normalize_waveform(waveform: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: what wav2vec2 expects, and what makes it gain-invariant."""
    centred = waveform - waveform.mean()
    return (centred / np.sqrt(centred.var() + 1e-7)).astype(np.float32)


def signal_features(waveform: np.ndarray) -> dict[str, float]:
    """The four waveform features of one analysis window (16 kHz mono)."""
    frames = _frames(normalize_waveform(waveform))
    energy = np.mean(frames**2, axis=1) + _TINY
    level_db = 10.0 * np.log10(energy / np.percentile(energy, 95))
    active = level_db > -ACTIVE_DB
    return {
        "audio_energy": float(10.0 * np.log10(energy.mean() / np.percentile(energy, 95))),
        "audio_variance": float(np.std(level_db[active])),
        "zero_crossing_rate": _zero_crossing_rate(frames[active]),
        "temporal_variation": _spectral_flux(frames, active),
    }


def hidden_state_variance(hidden: np.ndarray) -> float:
    """Share of the hidden states' energy that changes over time: var_t / mean_t(h^2)."""
    hidden = hidden.astype(np.float64, copy=False)
    return float(hidden.var(axis=0).mean() / (np.mean(hidden**2) + _TINY))


def _frames(waveform: np.ndarray) -> np.ndarray:
    if len(waveform) < FRAME:
        waveform = np.pad(waveform, (0, FRAME - len(waveform)))
    return sliding_window_view(waveform, FRAME)[::HOP]


def _zero_crossing_rate(frames: np.ndarray) -> float:
    signs = np.signbit(frames)
    return float(np.mean(signs[:, 1:] != signs[:, :-1]))


def _spectral_flux(frames: np.ndarray, active: np.ndarray) -> float:
    """Mean spectral change between neighbouring frames, 1 - cosine of their magnitude spectra."""
    spectra = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=1))
    norms = np.linalg.norm(spectra, axis=1) + _TINY
    cosine = np.sum(spectra[1:] * spectra[:-1], axis=1) / (norms[1:] * norms[:-1])
    both_active = active[1:] & active[:-1]
    if not both_active.any():
        return 0.0
    return float(np.mean(1.0 - cosine[both_active]))
