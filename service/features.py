"""The five loudness-invariant features that the votes compare with learned thresholds.

Every feature is a ratio, a rate or a log-difference, computed on the clip's loud frames
(speech, not pauses), so a gain leaves it unchanged and background noise moves it little:

- audio_energy: share of the loud frames' spectral energy in 2-4 kHz (of 0-4 kHz).
- audio_variance: aperiodic share of the variance, 1 - the normalised autocorrelation peak
  at the pitch period (what is left after predicting each sample from one period earlier).
- zero_crossing_rate: sign changes per sample of the lightly smoothed signal.
- temporal_variation: how much the pitch moves, at two time scales: the geometric mean of
  jitter (median change of log period between neighbouring voiced frames, 10 ms apart) and
  intonation range (10th-90th percentile spread of log period over the voiced frames).
- hidden_state_variance: share of the wav2vec2 last hidden state's energy that varies in time.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from service.audio import SAMPLE_RATE

FEATURE_NAMES = (
    "audio_energy",
    "audio_variance",
    "zero_crossing_rate",
    "temporal_variation",
    "hidden_state_variance",
)

HOP = 160  # 10 ms
FRAME = 400  # 25 ms, for spectra and crossings
PITCH_FRAME = 640  # 40 ms: two periods of a 50 Hz voice
PITCH_LAGS = (40, 256)  # periods of 400 Hz down to 62.5 Hz
LOUD_DB = 20.0  # frames within this many dB of the loud (95th percentile) frames
VOICED_PEAK = 0.5  # normalised autocorrelation peak above which a frame counts as voiced
HIGH_BAND_HZ = (2_000, 4_000)
SMOOTHING = 8  # samples in the moving average before counting crossings (first null at 2 kHz)
_TINY = 1e-12


def normalize_waveform(waveform: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: what wav2vec2 expects, and what makes it gain-invariant."""
    centred = waveform - waveform.mean()
    return np.asarray(centred / np.sqrt(centred.var() + 1e-7), dtype=np.float32)


def signal_features(waveform: np.ndarray) -> dict[str, float]:
    """The four waveform features of one analysis window (16 kHz mono)."""
    signal = normalize_waveform(waveform).astype(np.float64)
    frames = _frames(signal, FRAME)
    loud = _loud(frames)
    peaks, periods = _pitch(_frames(signal, PITCH_FRAME))
    return {
        "audio_energy": _high_band_share(frames[loud]),
        "audio_variance": float(1.0 - peaks.mean()),
        "zero_crossing_rate": _smoothed_crossings(signal, loud),
        "temporal_variation": _pitch_movement(periods, peaks > VOICED_PEAK),
    }


def hidden_state_variance(hidden: np.ndarray) -> float:
    """Share of the hidden states' energy that changes over time: var_t / mean_t(h^2)."""
    hidden = hidden.astype(np.float64, copy=False)
    return float(hidden.var(axis=0).mean() / (np.mean(hidden**2) + _TINY))


def _frames(signal: np.ndarray, length: int) -> np.ndarray:
    if len(signal) < length:
        signal = np.pad(signal, (0, length - len(signal)))
    return sliding_window_view(signal, length)[::HOP]


def _loud(frames: np.ndarray) -> np.ndarray:
    energy = np.mean(frames**2, axis=1) + _TINY
    return np.asarray(10.0 * np.log10(energy / np.percentile(energy, 95)) > -LOUD_DB)


def _high_band_share(frames: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
    hz = np.fft.rfftfreq(frames.shape[1], 1.0 / SAMPLE_RATE)
    high = power[:, (hz >= HIGH_BAND_HZ[0]) & (hz < HIGH_BAND_HZ[1])].sum()
    return float(high / (power[:, hz < HIGH_BAND_HZ[1]].sum() + _TINY))


def _pitch(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per loud frame: normalised autocorrelation peak within the pitch lags, and its lag."""
    frames = frames[_loud(frames)]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, n=2 * frames.shape[1], axis=1)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)
    autocorrelation /= autocorrelation[:, :1] + _TINY
    low, high = PITCH_LAGS
    lags = autocorrelation[:, low:high]
    best = np.clip(lags.argmax(axis=1), 1, high - low - 2)
    rows = np.arange(len(lags))
    left, peak, right = lags[rows, best - 1], lags[rows, best], lags[rows, best + 1]
    curvature = left - 2 * peak + right
    safe = np.where(np.abs(curvature) > _TINY, curvature, -1.0)
    offset = np.where(np.abs(curvature) > _TINY, np.clip(0.5 * (left - right) / safe, -0.5, 0.5), 0.0)
    return lags.max(axis=1), best + low + offset  # parabolic interpolation: sub-sample periods


def _smoothed_crossings(signal: np.ndarray, loud: np.ndarray) -> float:
    smooth = np.convolve(signal, np.ones(SMOOTHING) / SMOOTHING, mode="same")
    signs = np.signbit(_frames(smooth, FRAME)[loud])
    return float(np.mean(signs[:, 1:] != signs[:, :-1]))


def _pitch_movement(periods: np.ndarray, voiced: np.ndarray) -> float:
    both_voiced = voiced[1:] & voiced[:-1]
    if both_voiced.sum() < 2:
        return 0.0
    log_period = np.log(periods)
    jitter = np.median(np.abs(np.diff(log_period))[both_voiced])
    spread = np.subtract(*np.percentile(log_period[voiced], [90, 10]))
    return float(np.sqrt(jitter * spread))
