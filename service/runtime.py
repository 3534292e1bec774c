"""What the service holds from start-up on (the graph, its manifest and votes, the limits) and the
analysis it runs in the thread pool."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from service.artifacts import Artifacts, Manifest
from service.audio import SAMPLE_RATE, AudioLimits, decode_audio
from service.detector import Detection, EncoderBudget, EncoderPace, Window, analyse_window, detect
from service.limiter import ByteBudget, InferenceLimiter, RateLimit
from service.malloc import release_free_memory
from service.metrics import Metrics
from service.model import Encoder, HiddenStates
from service.settings import Settings
from service.verdict import VoteRules

# Largest bodies parsed in memory at once, over all requests: json.loads holds the GIL, so a second
# parse at the same time would only wait inside the thread pool, holding its memory.
PARSING_BUDGET_BODIES = 1


@dataclass
class Runtime:
    settings: Settings
    encoder: HiddenStates
    rules: VoteRules
    manifest: Manifest
    metrics: Metrics
    limiter: InferenceLimiter
    rate_limit: RateLimit
    pace: EncoderPace
    parsing: ByteBudget
    limits: AudioLimits = field(default_factory=AudioLimits)
    ready: bool = True

    @property
    def random_weights(self) -> bool:
        return self.manifest.source.random_weights

    @property
    def weights(self) -> str:
        """ "pretrained" or "random-init": where the graph's weights came from, as every verdict says."""
        return self.manifest.source.kind

    def analyse(self, audio: bytes | BinaryIO, deadline: float | None = None) -> Detection:
        """Blocking: decode (``audio``: bytes, or a file open at its start) and classify, wav2vec2
        within what ``deadline`` (time.monotonic()) leaves. Runs in the thread pool."""
        try:
            waveform = decode_audio(audio, self.limits)
            started = time.perf_counter()
            budget = EncoderBudget(deadline=deadline, pace=self.pace)
            detection = detect(self.encoder, self.rules, waveform, self.settings.window_seconds, budget)
            self.metrics.record_inference(time.perf_counter() - started)
            return detection
        finally:
            release_free_memory()

    def analyse_window(self, piece: np.ndarray, start: int) -> Window:
        """Blocking: one 16 kHz window of a live stream (``start``: its first sample's index)."""
        try:
            started = time.perf_counter()
            window = analyse_window(self.encoder, piece, start)
            self.metrics.record_inference(time.perf_counter() - started)
            return window
        finally:
            release_free_memory()


def load_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    artifacts = Artifacts(settings.artifacts_dir)
    manifest, rules = artifacts.load()
    encoder = Encoder.load(artifacts.graph, settings.threads)
    pace = measure_pace(encoder)
    release_free_memory()
    limits = AudioLimits(max_seconds=settings.max_audio_seconds, min_seconds=settings.min_audio_seconds)
    limiter = InferenceLimiter(settings.max_concurrent, settings.max_queue, settings.queue_timeout_seconds)
    rate_limit = RateLimit(settings.rate_limit_per_minute)
    parsing = ByteBudget(PARSING_BUDGET_BODIES * settings.max_body_bytes)
    return Runtime(settings, encoder, rules, manifest, metrics, limiter, rate_limit, pace, parsing, limits)


def measure_pace(encoder: Encoder, seconds: float = 0.5) -> EncoderPace:
    """One run before traffic: it allocates what every run needs, and its time, slower than any
    later run, stands for the pace until the first request's run replaces it."""
    started = time.perf_counter()
    encoder(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32))
    return EncoderPace((time.perf_counter() - started) / seconds)
