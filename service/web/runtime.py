"""What the service holds from start-up on (the detector, the limits, the metrics) and the
analysis it runs in the thread pool."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from service.detector import AnalysisOptions, Detector
from service.detector.artifacts import Manifest
from service.detector.audio import SAMPLE_RATE, AudioLimits, decode_audio
from service.detector.encoder import HiddenStates
from service.detector.malloc import release_free_memory
from service.detector.votes import VoteRules
from service.detector.windows import Detection, EncoderBudget, EncoderPace, Window
from service.web.limiter import ByteBudget, InferenceLimiter, RateLimit
from service.web.prometheus import Metrics
from service.web.settings import Settings

# Largest bodies parsed in memory at once, over all requests: json.loads holds the GIL, so a second
# parse at the same time would only wait inside the thread pool, holding its memory.
PARSING_BUDGET_BODIES = 1


@dataclass
class Runtime:
    """The detector wrapped in what a web service adds: limits, budgets, pace and metrics."""

    settings: Settings
    detector: Detector
    metrics: Metrics
    limiter: InferenceLimiter
    rate_limit: RateLimit
    pace: EncoderPace
    parsing: ByteBudget
    ready: bool = True

    @property
    def rules(self) -> VoteRules:
        return self.detector.rules

    @property
    def manifest(self) -> Manifest:
        return self.detector.manifest

    @property
    def limits(self) -> AudioLimits:
        return self.detector.options.limits

    @property
    def random_weights(self) -> bool:
        return self.manifest.source.random_weights

    @property
    def weights(self) -> str:
        return self.detector.weights

    def analyse(self, audio: bytes | BinaryIO, deadline: float | None = None) -> Detection:
        """Blocking: decode (``audio``: bytes, or a file open at its start) and classify, wav2vec2
        within what ``deadline`` (time.monotonic()) leaves. Runs in the thread pool."""
        try:
            waveform = decode_audio(audio, self.limits)
            started = time.perf_counter()
            budget = EncoderBudget(deadline=deadline, pace=self.pace)
            detection = self.detector.analyse_waveform(waveform, budget)
            self.metrics.record_inference(time.perf_counter() - started)
            return detection
        finally:
            release_free_memory()

    def analyse_window(self, piece: np.ndarray, start: int) -> Window:
        """Blocking: one 16 kHz window of a live stream (``start``: its first sample's index)."""
        try:
            started = time.perf_counter()
            window = self.detector.analyse_window(piece, start)
            self.metrics.record_inference(time.perf_counter() - started)
            return window
        finally:
            release_free_memory()


def load_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    limits = AudioLimits(max_seconds=settings.max_audio_seconds, min_seconds=settings.min_audio_seconds)
    options = AnalysisOptions(settings.window_seconds, limits)
    detector = Detector.load(settings.artifacts_dir, settings.threads, options)
    pace = measure_pace(detector.encoder)
    release_free_memory()
    limiter = InferenceLimiter(settings.max_concurrent, settings.max_queue, settings.queue_timeout_seconds)
    rate_limit = RateLimit(settings.rate_limit_per_minute)
    parsing = ByteBudget(PARSING_BUDGET_BODIES * settings.max_body_bytes)
    return Runtime(settings, detector, metrics, limiter, rate_limit, pace, parsing)


def measure_pace(encoder: HiddenStates, seconds: float = 0.5) -> EncoderPace:
    """One run before traffic: it allocates what every run needs, and its time, slower than any
    later run, stands for the pace until the first request's run replaces it."""
    started = time.perf_counter()
    encoder(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32))
    return EncoderPace((time.perf_counter() - started) / seconds)
