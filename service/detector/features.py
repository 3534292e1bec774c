"""The measurements behind the five votes, each normalised per window so a gain changes nothing.

A window is normalised to zero mean and unit variance and low-passed to the telephone band
(nothing above 3.8 kHz; spectral measurements stop at 3.4 kHz) before any signal measurement:
every measurement is then a ratio, a rate, a log-share or a log-difference of content that
survives an 8 kHz channel, so neither loudness nor bandwidth can give a class away. Speech
frames are those within 20 dB of the window's loud (95th percentile) frames; pitch comes from
the normalised autocorrelation of 40 ms frames.

Why each family differs between vocoded/synthetic and natural speech:

- audio energy: vocoders and concatenation reshape the spectral envelope (band-energy profile,
  tilt) and the level contour (synthetic speech is level-flat within words, pauses are clean);
  statistical-parametric voices over-smooth the envelope's trajectory (little fast cepstral
  change for its overall variance), concatenation leaves isolated flux spikes at unit joins, and
  neural vocoders leave stationary tonal lines (upsampling traces) in the long-term spectrum.
- audio variance: natural voices mix breath noise into the harmonics at a varying rate; formant
  and LPC synthesis are too periodic, noise-excited vocoders too noisy, both with less spread;
  pulse-excited (buzzy) voices stay periodic in the upper band where a person's voice turns
  noisy, and a vocoder's phase across frequency (group delay) is not a glottal pulse's.
- zero-crossing rate: the balance of low and high content at several smoothings (which band the
  crossings come from) and how much it varies frame to frame (fricative/vowel alternation).
- temporal variation: people's pitch wobbles (jitter), moves widely (range), their level wobbles
  (shimmer), syllables modulate energy at 2-8 Hz, and pauses are irregular; concatenation resets
  pitch at joins (jumps between voiced frames), synthetic syllables come at too regular intervals,
  and a machine's pauses are flat digital floors where a person's hold breath and room.
- hidden-state variance: how the wav2vec2 representation moves in time, dimension by dimension,
  summarised by order-free statistics (quantiles over dimensions, how evenly the movement is
  spread, frame-to-frame correlation): no statistic singles out a dimension, so none can depend
  on which unit of a particular set of weights (random or pretrained) carries what.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from service.detector.audio import SAMPLE_RATE

HOP = 160  # 10 ms
FRAME = 400  # 25 ms, for spectra and crossings
FFT = 512
PITCH_FRAME = 640  # 40 ms: two periods of a 50 Hz voice
PITCH_LAGS = (40, 256)  # periods of 400 Hz down to 62.5 Hz
LOUD_DB = 20.0  # frames within this many dB of the loud (95th percentile) frames
PAUSE_DB = 30.0  # frames this far below the loud frames (or within 6 dB of the noise floor) are pauses
VOICED_PEAK = 0.5  # normalised autocorrelation peak above which a frame counts as voiced
LOWPASS_HZ = (3_400.0, 3_800.0)  # raised-cosine edge of the telephone-band low-pass
BAND_TOP_HZ = 3_400.0  # spectral measurements stop where the low-pass begins
BAND_EDGES_HZ = (80.0, 300.0, 600.0, 1_000.0, 1_600.0, 2_400.0, BAND_TOP_HZ)
SMOOTHINGS = (1, 4, 16)  # moving-average lengths before counting crossings
FRAME_RATE = SAMPLE_RATE / HOP
_TINY = 1e-12
UPPER_BAND_HZ = (1_600.0, BAND_TOP_HZ)  # where a person's voiced excitation turns noisy
PITCH_JUMP = (0.08, 0.4)  # |change of log period| over 40 ms of voice: a reset, not an octave error
NUCLEUS_DB = -12.0  # envelope peaks this close to the loud frames are syllable nuclei


def normalize_waveform(waveform: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: what wav2vec2 expects, and what makes it gain-invariant."""
    centred = waveform - waveform.mean()
    return np.asarray(centred / np.sqrt(centred.var() + 1e-7), dtype=np.float32)


def telephone_band(signal: np.ndarray) -> np.ndarray:
    """Zero-phase low-pass: flat to 3.4 kHz, nothing above 3.8 kHz (raised cosine between), one FFT."""
    spectrum = np.fft.rfft(signal)
    hz = np.fft.rfftfreq(len(signal), 1.0 / SAMPLE_RATE)
    edge = np.clip((hz - LOWPASS_HZ[0]) / (LOWPASS_HZ[1] - LOWPASS_HZ[0]), 0.0, 1.0)
    return np.asarray(np.fft.irfft(spectrum * 0.5 * (1 + np.cos(np.pi * edge)), n=len(signal)))


@dataclass(frozen=True)
class SignalAnalysis:
    """What the signal votes share: frames, their power spectra, energies and pitch."""

    signal: np.ndarray  # normalised, telephone band
    frames: np.ndarray  # FRAME-long, HOP apart
    power: np.ndarray  # |rfft|^2 of the Hann-windowed frames, FFT points
    hz: np.ndarray
    frame_db: np.ndarray  # level of each frame relative to the loud frames (95th percentile)
    loud: np.ndarray
    peaks: np.ndarray  # normalised autocorrelation peak per frame (aligned with frames)
    periods: np.ndarray  # its lag, in samples

    @property
    def voiced(self) -> np.ndarray:
        return np.asarray(self.loud & (self.peaks > VOICED_PEAK))

    @classmethod
    def of(cls, waveform: np.ndarray) -> SignalAnalysis:
        signal = telephone_band(normalize_waveform(waveform).astype(np.float64))
        pitch_frames = _frames(signal, PITCH_FRAME)
        frames = _frames(signal, FRAME)[: len(pitch_frames)]
        power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), n=FFT, axis=1)) ** 2
        energy = np.mean(frames**2, axis=1) + _TINY
        frame_db = 10.0 * np.log10(energy / np.percentile(energy, 95))
        loud = np.asarray(frame_db > -LOUD_DB)
        peaks, periods = np.zeros(len(frames)), np.full(len(frames), float(PITCH_LAGS[0]))
        peaks[loud], periods[loud] = _pitch(pitch_frames[loud])
        return cls(
            signal=signal,
            frames=frames,
            power=power,
            hz=np.fft.rfftfreq(FFT, 1.0 / SAMPLE_RATE),
            frame_db=frame_db,
            loud=loud,
            peaks=peaks,
            periods=periods,
        )


def energy_measurements(a: SignalAnalysis) -> dict[str, float]:
    loud_power = a.power[a.loud]
    band_power = np.array(
        [loud_power[:, (a.hz >= lo) & (a.hz < hi)].sum() for lo, hi in itertools.pairwise(BAND_EDGES_HZ)]
    )
    shares = np.log10(band_power / (band_power.sum() + _TINY) + 1e-6)
    in_band = (a.hz >= 100.0) & (a.hz < BAND_TOP_HZ)
    mean_db = 10 * np.log10(loud_power[:, in_band].mean(axis=0) + _TINY)
    tilt = np.polyfit(np.log2(a.hz[in_band]), mean_db, 1)[0]
    level = np.clip(a.frame_db, -80.0, 0.0)
    return {
        **{
            f"band_{int(lo)}_{int(hi)}": float(s)
            for lo, hi, s in zip(BAND_EDGES_HZ, BAND_EDGES_HZ[1:], shares, strict=False)
        },
        "spectral_tilt": float(tilt),
        "spectral_flux": _spectral_flux(a),
        "flux_peakiness": _flux_peakiness(a),
        "cepstral_variance": _cepstral_variance(a),
        "cepstral_delta_ratio": _cepstral_delta_ratio(a),
        "tonal_lines_db": _tonal_lines(a),
        "loud_level_spread": float(np.std(level[a.loud])),
        "level_range": float(np.subtract(*np.percentile(level, [95, 5]))),
    }


def variance_measurements(a: SignalAnalysis) -> dict[str, float]:
    peaks = a.peaks[a.loud]
    voiced = a.peaks[a.voiced]
    r = np.clip(voiced, 0.01, 0.999) if len(voiced) else np.array([0.5])
    in_band = (a.hz >= 100.0) & (a.hz < BAND_TOP_HZ)
    log_power = np.log(a.power[a.loud][:, in_band] + _TINY)
    log_flatness = log_power.mean(axis=1) - np.log(np.exp(log_power).mean(axis=1) + _TINY)
    return {
        "cepstral_peak_prominence": _cepstral_peak_prominence(a),
        "aperiodicity": float(1.0 - peaks.mean()),
        "harmonics_to_noise_db": float(np.median(10 * np.log10(r / (1 - r)))),
        "log_flatness": float(np.median(log_flatness)),
        "log_flatness_spread": float(np.std(log_flatness)),
        "voiced_share": float(np.mean(peaks > VOICED_PEAK)),
        "upper_band_periodicity": _upper_band_periodicity(a),
        "group_delay_spread": _group_delay_spread(a),
    }


def crossing_measurements(a: SignalAnalysis) -> dict[str, float]:
    out = {}
    cumulative = np.concatenate([[0.0], np.cumsum(a.signal)])
    for width in SMOOTHINGS:
        frames = _frames((cumulative[width:] - cumulative[:-width]) / width, FRAME)
        count = min(len(frames), len(a.loud))
        signs = np.signbit(frames[:count][a.loud[:count]])
        rate = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
        out[f"zcr_{width}_mean"] = float(np.log(rate.mean() + 1e-4))
        out[f"zcr_{width}_spread"] = float(np.std(np.log(rate + 1e-3)))
    return out


def temporal_measurements(a: SignalAnalysis) -> dict[str, float]:
    voiced = a.voiced
    both = voiced[1:] & voiced[:-1]
    log_period = np.log(a.periods)
    if both.sum() >= 2:
        jitter = float(np.log(np.median(np.abs(np.diff(log_period))[both]) + 1e-4))
        spread = float(np.subtract(*np.percentile(log_period[voiced], [90, 10])))
        shimmer = float(np.median(np.abs(np.diff(a.frame_db))[both]))
        three = both[1:] & both[:-1]
        curvature = np.abs(np.diff(log_period, 2))[three] if three.any() else np.array([1e-4])
        micro = float(np.log(np.median(curvature) + 1e-4))
    else:
        jitter, spread, shimmer, micro = float(np.log(1e-4)), 0.0, 0.0, float(np.log(1e-4))
    floor = max(float(np.percentile(a.frame_db, 5)), -PAUSE_DB - 10)  # the noise floor, if any
    envelope = np.clip(a.frame_db, floor, 0.0)
    modulation = np.abs(np.fft.rfft((envelope - envelope.mean()) * np.hanning(len(envelope)))) ** 2
    mod_hz = np.fft.rfftfreq(len(envelope), 1.0 / FRAME_RATE)
    syllabic = modulation[(mod_hz >= 2) & (mod_hz < 8)].sum() / (
        modulation[(mod_hz >= 0.5) & (mod_hz < 25)].sum() + _TINY
    )
    pause = a.frame_db < min(-10.0, max(-PAUSE_DB, floor + 6.0))  # at the noise floor
    starts = np.flatnonzero(pause[1:] & ~pause[:-1])
    return {
        "jitter": jitter,
        "pitch_range": spread,
        "shimmer_db": shimmer,
        "pitch_microprosody": micro,
        "syllabic_modulation": float(syllabic),
        "pause_share": float(pause.mean()),
        "pause_rate": float(len(starts) / (len(pause) / FRAME_RATE)),
        "pitch_jump_share": _pitch_jump_share(a),
        "syllable_regularity": _syllable_regularity(a),
        "pause_flatness": _pause_flatness(a),
    }


def hidden_variance_measurements(hidden: np.ndarray) -> dict[str, float]:
    """Order-free statistics of the per-dimension temporal variance of the hidden states."""
    hidden = hidden.astype(np.float64, copy=False)
    variance = hidden.var(axis=0)
    share = variance / (np.mean(hidden**2, axis=0) + _TINY)
    centred = hidden - hidden.mean(axis=0)
    lag1 = np.sum(centred[1:] * centred[:-1]) / (np.sum(centred**2) + _TINY) if len(hidden) > 1 else 0.0
    q10, q50, q90 = np.percentile(share, [10, 50, 90])
    return {
        "hidden_variance_share": float(variance.mean() / (np.mean(hidden**2) + _TINY)),
        "hidden_share_q10": float(q10),
        "hidden_share_q50": float(q50),
        "hidden_share_q90": float(q90),
        "hidden_participation": float(variance.sum() ** 2 / (len(variance) * np.sum(variance**2) + _TINY)),
        "hidden_lag1": float(lag1),
    }


def _cepstral_peak_prominence(a: SignalAnalysis) -> float:
    """Median over voiced frames of the cepstral peak (2.5-16 ms quefrency, 400-62.5 Hz) above the
    cepstrum's regression line, in dB: how clearly harmonic the voice is."""
    if not a.voiced.any():
        return 0.0
    log_power = 10 * np.log10(a.power[a.voiced] + _TINY)
    cepstrum = np.fft.irfft(log_power, axis=1)[:, : FFT // 2]
    quefrency = np.arange(FFT // 2)
    low, high = int(SAMPLE_RATE / 400), int(SAMPLE_RATE / 62.5)
    window = cepstrum[:, low:high]
    q = quefrency[low:high] - quefrency[low:high].mean()
    slope = window @ q / (q @ q)  # least-squares line per frame, in closed form
    baseline = window.mean(axis=1) + slope * (window.argmax(axis=1) - q.size / 2 + 0.5)
    return float(np.median(window.max(axis=1) - baseline))


def _cepstral_variance(a: SignalAnalysis) -> float:
    """Log of the mean temporal variance of the loud frames' cepstral coefficients 1-12 (telephone
    band): statistical-parametric synthesis over-smooths the envelope, so it varies too little."""
    in_band = (a.hz >= 100.0) & (a.hz < BAND_TOP_HZ)
    log_power = np.log(a.power[a.loud][:, in_band] + _TINY)
    if len(log_power) < 2:
        return 0.0
    return float(np.log(np.mean(_cepstra(log_power).var(axis=0)) + _TINY))


def _cepstra(log_power: np.ndarray) -> np.ndarray:
    """DCT-II coefficients 1-12 of log spectra (rows)."""
    n = log_power.shape[1]
    basis = np.cos(np.pi * np.outer(np.arange(1, 13), np.arange(n) + 0.5) / n)
    return np.asarray(log_power @ basis.T * (2.0 / n))


def _cepstral_delta_ratio(a: SignalAnalysis) -> float:
    """Log of the frame-to-frame cepstral change over the cepstra's variance (loud frame pairs):
    an over-smoothed (statistical-parametric) envelope moves slowly for how far it moves."""
    both = a.loud[1:] & a.loud[:-1]
    if both.sum() < 2:
        return 0.0
    in_band = (a.hz >= 100.0) & (a.hz < BAND_TOP_HZ)
    cepstra = _cepstra(np.log(a.power[:, in_band] + _TINY))
    delta = np.diff(cepstra, axis=0)[both]
    return float(
        np.log(np.mean(delta.var(axis=0)) + _TINY) - np.log(np.mean(cepstra[a.loud].var(axis=0)) + _TINY)
    )


def _flux_peakiness(a: SignalAnalysis) -> float:
    """Log of the 95th-percentile spectral flux over its median (loud frame pairs): unit joins are
    isolated spikes of spectral change above an otherwise smooth flow."""
    flux = _flux_series(a)
    if len(flux) < 4:
        return 0.0
    return float(np.log((np.percentile(flux, 95) + _TINY) / (np.median(flux) + _TINY)))


def _tonal_lines(a: SignalAnalysis) -> float:
    """Strongest stationary line in the loud frames' mean normalised log spectrum above its local
    (±150 Hz) median, in dB: a person's moving pitch smears harmonics; an upsampling trace or a
    monotone voice does not."""
    in_band = (a.hz >= 200.0) & (a.hz < BAND_TOP_HZ)
    if a.loud.sum() < 2:
        return 0.0
    log_power = 10 * np.log10(a.power[a.loud][:, in_band] + _TINY)
    mean = np.mean(log_power - log_power.mean(axis=1, keepdims=True), axis=0)
    half = round(150.0 / float(a.hz[1] - a.hz[0]))
    neighbourhood = sliding_window_view(np.pad(mean, half, mode="edge"), 2 * half + 1)
    return float(np.max(mean - np.median(neighbourhood, axis=1)))


def _upper_band_periodicity(a: SignalAnalysis) -> float:
    """Median over voiced frames of the upper band's (1.6-3.4 kHz) normalised autocorrelation at the
    voice's period (the inverse transform of the frame's power in that band): a person's upper
    harmonics are breathy and jittered, pulse excitation's are not."""
    voiced = np.flatnonzero(a.voiced)[::2]  # every other voiced frame: they overlap by 3/4
    if not len(voiced):
        return 0.0
    frames = _frames(a.signal, PITCH_FRAME)[voiced]
    spectrum = np.fft.rfft(frames - frames.mean(axis=1, keepdims=True), n=2 * PITCH_FRAME, axis=1)
    hz = np.fft.rfftfreq(2 * PITCH_FRAME, 1.0 / SAMPLE_RATE)
    band = (hz >= UPPER_BAND_HZ[0]) & (hz < UPPER_BAND_HZ[1])
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2 * band, axis=1)
    lag = np.clip(np.round(a.periods[voiced]).astype(int), 1, PITCH_FRAME - 1)
    unbiased = autocorrelation[np.arange(len(voiced)), lag] * PITCH_FRAME / (PITCH_FRAME - lag)
    return float(np.median(unbiased / (autocorrelation[:, 0] + _TINY)))


def _group_delay_spread(a: SignalAnalysis) -> float:
    """Median over voiced frames of the spread (std, ms) of the group delay across the frame's
    strong bins (within 30 dB of its peak, 300-3400 Hz), delays clipped to the frame's span."""
    voiced = np.flatnonzero(a.voiced)
    if not len(voiced):
        return 0.0
    frames = a.frames[voiced] * np.hanning(FRAME)
    x = np.fft.rfft(frames, n=FFT, axis=1)
    y = np.fft.rfft(frames * np.arange(FRAME), n=FFT, axis=1)
    power = np.abs(x) ** 2
    span_ms = FRAME / SAMPLE_RATE * 1000.0
    delay = np.clip(np.real(y * np.conj(x)) / (power + _TINY) / SAMPLE_RATE * 1000.0, 0.0, span_ms)
    in_band = (a.hz >= 300.0) & (a.hz < BAND_TOP_HZ)
    strong = ((power >= power[:, in_band].max(axis=1, keepdims=True) * 1e-3) & in_band).astype(float)
    count = strong.sum(axis=1) + _TINY
    mean = (delay * strong).sum(axis=1) / count
    spread = np.sqrt(((delay - mean[:, None]) ** 2 * strong).sum(axis=1) / count)
    return float(np.median(spread))


def _pitch_jump_share(a: SignalAnalysis) -> float:
    """Share of voiced frame pairs one pitch frame (40 ms) apart whose pitch jumps: a reset at a
    join (the frame across it may lose its voicing), not a glide and not an octave error."""
    span = PITCH_FRAME // HOP
    voiced = a.voiced[span:] & a.voiced[:-span]
    if not voiced.any():
        return 0.0
    log_period = np.log(a.periods)
    step = np.abs(log_period[span:] - log_period[:-span])[voiced]
    return float(np.mean((step > PITCH_JUMP[0]) & (step < PITCH_JUMP[1])))


def _syllable_regularity(a: SignalAnalysis) -> float:
    """Spread (std) of the log intervals between syllable nuclei (envelope peaks near the loud
    level, at least 80 ms apart, within phrases of under 0.6 s gaps): machines time too evenly."""
    envelope = np.convolve(np.clip(a.frame_db, -60.0, 0.0), np.ones(7) / 7, mode="same")
    inner = envelope[1:-1]
    peaks = np.flatnonzero((inner > envelope[:-2]) & (inner >= envelope[2:]) & (inner > NUCLEUS_DB)) + 1
    kept: list[int] = []
    for peak in peaks:
        if not kept or peak - kept[-1] >= 8:
            kept.append(int(peak))
    intervals = np.diff(kept) / FRAME_RATE
    intervals = intervals[intervals < 0.6]
    return float(np.std(np.log(intervals))) if len(intervals) >= 3 else 0.0


def _pause_flatness(a: SignalAnalysis) -> float:
    """Median log spectral flatness of the quietest tenth of frames (in band): a digital or
    codec-noise floor is flat; breath and room noise are shaped."""
    quiet = a.frame_db <= np.percentile(a.frame_db, 10)
    in_band = (a.hz >= 100.0) & (a.hz < BAND_TOP_HZ)
    log_power = np.log(a.power[quiet][:, in_band] + _TINY)
    flatness = log_power.mean(axis=1) - np.log(np.exp(log_power).mean(axis=1) + _TINY)
    return float(np.median(flatness))


def _flux_series(a: SignalAnalysis) -> np.ndarray:
    in_band = (a.hz >= 100.0) & (a.hz < BAND_TOP_HZ)
    log_power = 10 * np.log10(a.power[:, in_band] + _TINY)
    log_power -= log_power.mean(axis=1, keepdims=True)
    both = a.loud[1:] & a.loud[:-1]
    return np.asarray(np.sqrt(np.mean(np.diff(log_power, axis=0) ** 2, axis=1))[both])


def _spectral_flux(a: SignalAnalysis) -> float:
    """Median frame-to-frame change of the loud frames' normalised log spectrum (dB, telephone band)."""
    flux = _flux_series(a)
    return float(np.median(flux)) if len(flux) else 0.0


def _frames(signal: np.ndarray, length: int) -> np.ndarray:
    if len(signal) < length:
        signal = np.pad(signal, (0, length - len(signal)))
    return sliding_window_view(signal, length)[::HOP]


def _pitch(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: normalised autocorrelation peak within the pitch lags, and its lag."""
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
