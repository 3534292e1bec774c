"""The pipeline after decoding: windows -> features -> votes -> verdict per window and per clip.

The signal features cover every window. wav2vec2, by far the slowest stage, runs on the windows an
``EncoderBudget`` affords: all of them when they fit, otherwise a subset spread evenly over the clip,
so that a slow CPU still answers by the deadline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import soxr

from service.detector.audio import (
    PCM_ENCODINGS,
    SAMPLE_RATE,
    AudioLimits,
)
from service.detector.encoder import HiddenStates
from service.detector.errors import AudioError
from service.detector.measurements import hidden_measurements, signal_measurements
from service.detector.votes import Verdict, VoteRules

# Peak memory grows with the analysis window (the feature encoder's activations; docs/benchmarks.md).
DEFAULT_WINDOW_SECONDS = 5.0
WINDOW_SECONDS_RANGE = (2.0, 30.0)

MIN_ENCODED_SECONDS = 1.0  # the least audio wav2vec2 always gets, even past the budget
PACE_MARGIN = 1.25  # the pace is a moving average: plan for runs this much slower
RESERVE_SECONDS = 0.5  # kept back for building and sending the answer
PACE_WEIGHT = 0.3  # weight of the newest run in the moving average


@dataclass
class EncoderPace:
    """Measured encoder speed: wall seconds per second of audio. The first real run replaces the
    start-up estimate; later ones move a moving average."""

    seconds_per_audio_second: float
    runs: int = 0

    def observe(self, audio_seconds: float, wall_seconds: float) -> None:
        latest = wall_seconds / max(audio_seconds, 1e-3)
        weight = PACE_WEIGHT if self.runs else 1.0
        self.seconds_per_audio_second += weight * (latest - self.seconds_per_audio_second)
        self.runs += 1


@dataclass
class EncoderBudget:
    """How much audio wav2vec2 may still take: a fixed allowance, a deadline at a measured pace, or both."""

    audio_seconds: float = math.inf
    deadline: float | None = None  # time.monotonic() by which the answer is due
    pace: EncoderPace | None = None

    def affordable_seconds(self) -> float:
        allowance = self.audio_seconds
        if self.deadline is not None and self.pace is not None:
            left = self.deadline - time.monotonic() - RESERVE_SECONDS
            allowance = min(allowance, left / (self.pace.seconds_per_audio_second * PACE_MARGIN))
        return max(0.0, allowance)

    def spend(self, audio_seconds: float, wall_seconds: float) -> None:
        self.audio_seconds -= audio_seconds
        if self.pace is not None:
            self.pace.observe(audio_seconds, wall_seconds)


# The shortest window analysed after full ones: below it a clip's remainder is left out (it would
# weigh little in the clip's mean and give a noisy segment verdict). Same as the shortest clip.
MIN_WINDOW_SECONDS = 0.5


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    features: dict[str, float]
    encoded_seconds: float = 0.0  # audio of this window that wav2vec2 saw (0: the clip's mean stands in)


@dataclass(frozen=True)
class Detection:
    verdict: Verdict
    segments: tuple[tuple[Window, Verdict], ...]
    seconds: float
    encoded_seconds: float = 0.0


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


def spread_order(count: int) -> list[int]:
    """Every index below ``count``, ordered so that each prefix is spread evenly over them: the
    middle, then the quarters, the eighths... (van der Corput's sequence)."""
    order: list[int] = []
    k = 0
    while len(order) < count:
        k += 1
        fraction, bit, rest = 0.0, 0.5, k
        while rest:
            fraction += bit * (rest & 1)
            rest, bit = rest >> 1, bit / 2
        index = int(fraction * count)
        if index not in order:
            order.append(index)
    return order


def analyse_window(encoder: HiddenStates, piece: np.ndarray, start: int) -> Window:
    """One window, wav2vec2 included (a live stream's); ``start``: its first sample in the clip."""
    features = signal_measurements(piece) | hidden_measurements(encoder(piece))
    return _checked_window(start, start + len(piece), features, len(piece) / SAMPLE_RATE)


def window_features(
    encoder: HiddenStates, waveform: np.ndarray, window_seconds: float, budget: EncoderBudget | None = None
) -> list[Window]:
    spans = analysis_windows(len(waveform), window_seconds)
    signal = [signal_measurements(waveform[start:end]) for start, end in spans]
    hidden = _encode_planned(encoder, waveform, spans, budget or EncoderBudget())
    lengths = [spans[index][1] - spans[index][0] for index in hidden]
    fallback = _weighted_mean([measured for measured, _ in hidden.values()], lengths)
    windows = []
    for index, ((start, end), features) in enumerate(zip(spans, signal, strict=True)):
        measured, seconds = hidden.get(index, (fallback, 0.0))
        windows.append(_checked_window(start, end, features | measured, seconds))
    return windows


def _checked_window(start: int, end: int, features: dict[str, float], encoded_seconds: float) -> Window:
    if not all(math.isfinite(value) for value in features.values()):
        raise AudioError(
            f"audio could not be analysed at {start / SAMPLE_RATE:.1f}-{end / SAMPLE_RATE:.1f} s"
        )
    return Window(start / SAMPLE_RATE, end / SAMPLE_RATE, features, encoded_seconds)


def _encode_planned(
    encoder: HiddenStates, waveform: np.ndarray, spans: list[tuple[int, int]], budget: EncoderBudget
) -> dict[int, tuple[dict[str, float], float]]:
    """Hidden-state measurements and encoded seconds of each window the budget affords, taken in
    ``spread_order``; the first always runs, on its centre when the budget is short of a window."""
    hidden: dict[int, tuple[dict[str, float], float]] = {}
    for index in spread_order(len(spans)):
        start, end = spans[index]
        affordable = budget.affordable_seconds() * SAMPLE_RATE
        if hidden and affordable < end - start:
            break
        keep = max(affordable, MIN_ENCODED_SECONDS * SAMPLE_RATE)
        if keep < end - start:
            start += (end - start - int(keep)) // 2
            end = start + int(keep)
        started = time.monotonic()
        measured = hidden_measurements(encoder(waveform[start:end]))
        seconds = (end - start) / SAMPLE_RATE
        budget.spend(seconds, time.monotonic() - started)
        hidden[index] = (measured, seconds)
    return hidden


def _weighted_mean(rows: list[dict[str, float]], weights: list[int]) -> dict[str, float]:
    return {name: float(np.average([row[name] for row in rows], weights=weights)) for name in rows[0]}


def clip_features(windows: list[Window]) -> dict[str, float]:
    """Duration-weighted mean of the window measurements. Windows wav2vec2 skipped carry the
    encoded windows' weighted means, so the hidden-state values are the means over those."""
    return _weighted_mean(
        [w.features for w in windows], [round((w.end - w.start) * SAMPLE_RATE) for w in windows]
    )


def conclude(rules: VoteRules, windows: list[Window], samples: int) -> Detection:
    """The clip's detection from its windows' features (a live stream keeps only these)."""
    segments = tuple((w, rules.decide(w.features)) for w in windows)
    encoded = sum(w.encoded_seconds for w in windows)
    return Detection(rules.decide(clip_features(windows)), segments, samples / SAMPLE_RATE, encoded)


def detect(
    encoder: HiddenStates,
    rules: VoteRules,
    waveform: np.ndarray,
    window_seconds: float,
    budget: EncoderBudget | None = None,
) -> Detection:
    return conclude(rules, window_features(encoder, waveform, window_seconds, budget), len(waveform))


@dataclass
class WindowAssembler:
    """PCM frames in, complete 16 kHz analysis windows out; holds at most one window of audio."""

    sample_rate: int
    window_seconds: float
    encoding: str = "pcm_s16le"
    max_peak: float = AudioLimits.corrupt_peak  # float samples beyond it are corrupt, as in a file
    input_samples: int = 0
    start: int = 0  # index (16 kHz) of the first sample of the window being filled
    _sum: float = 0.0
    _count: int = 0
    _low: float = 0.0
    _high: float = 0.0
    _odd: bytes = b""
    _parts: list[np.ndarray] = field(default_factory=list)
    _buffered: int = 0

    def __post_init__(self) -> None:
        self._size = window_samples(self.window_seconds)
        self._resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32")

    @property
    def swing(self) -> float:
        """The largest distance of a 16 kHz sample so far from their mean (DC offset removed)."""
        mean = self._sum / max(self._count, 1)
        return max(self._high - mean, mean - self._low)

    @property
    def input_seconds(self) -> float:
        return self.input_samples / self.sample_rate

    def feed(self, data: bytes) -> list[tuple[int, np.ndarray]]:
        dtype = PCM_ENCODINGS[self.encoding]
        data = self._odd + data
        whole = len(data) - len(data) % dtype.itemsize
        self._odd = data[whole:]
        samples = np.frombuffer(data, dtype=dtype, count=whole // dtype.itemsize)
        if dtype.kind == "i":
            pcm = samples.astype(np.float32) / 32768.0
        elif np.all(np.abs(samples) <= self.max_peak):  # also catches NaN
            pcm = samples.astype(np.float32)
        else:
            raise AudioError("audio is corrupt: it holds samples far beyond full scale")
        self.input_samples += len(pcm)
        return self.add(self._resampler.resample_chunk(pcm))

    def finish(self) -> tuple[list[tuple[int, np.ndarray]], int]:
        """The windows still to analyse, and the stream's length in 16 kHz samples."""
        windows = self.add(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        total = self.start + self._buffered
        last_start, last_end = analysis_windows(total, self.window_seconds)[-1]
        if self._buffered and last_start == self.start and last_end == total:
            windows.append((self.start, np.concatenate(self._parts)))
        self._parts, self._buffered = [], 0
        return windows, total

    def add(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """16 kHz samples already resampled (a file's, decoded by ``audio.resampled_blocks``)."""
        if not len(chunk):
            return []
        self._sum += float(np.sum(chunk, dtype=np.float64))
        self._low = min(self._low, float(chunk.min())) if self._count else float(chunk.min())
        self._high = max(self._high, float(chunk.max())) if self._count else float(chunk.max())
        self._count += len(chunk)
        self._parts.append(chunk)
        self._buffered += len(chunk)
        windows = []
        while self._buffered >= self._size:
            joined = np.concatenate(self._parts)
            windows.append((self.start, joined[: self._size]))
            self.start += self._size
            self._parts, self._buffered = [joined[self._size :]], len(joined) - self._size
        return windows
