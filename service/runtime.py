"""What the service loads once at start-up: the graph, its manifest and its votes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.audio import SAMPLE_RATE, AudioLimits, decode_audio
from service.detector import Detection, EncoderBudget, EncoderPace, Window, analyse_window, detect
from service.limiter import ByteBudget, InferenceLimiter, RateLimit
from service.malloc import release_free_memory
from service.metrics import Metrics
from service.model import Encoder
from service.settings import Settings
from service.verdict import VoteRules

UPLOAD_BUDGET_BODIES = 2  # bodies of the largest size held in memory at once, over all uploads


class ArtifactsError(RuntimeError):
    """The artifacts folder cannot be served; the message says how to make it."""


@dataclass
class Runtime:
    settings: Settings
    encoder: Encoder
    rules: VoteRules
    manifest: dict[str, Any]
    metrics: Metrics
    limiter: InferenceLimiter
    rate_limit: RateLimit
    pace: EncoderPace
    uploads: ByteBudget
    limits: AudioLimits = field(default_factory=AudioLimits)
    ready: bool = True

    @property
    def random_weights(self) -> bool:
        return bool(self.manifest.get("source", {}).get("kind") == "random-init")

    def analyse(self, audio: bytes, deadline: float | None = None) -> Detection:
        """Blocking: decode and classify, wav2vec2 within what ``deadline`` (time.monotonic()) leaves.
        Runs in the thread pool."""
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

    def health(self) -> dict[str, Any]:
        status = "degraded" if self.random_weights else "ok"
        return {
            "status": status if self.ready else "unavailable",
            "model": {
                "source": self.manifest.get("source", {}),
                "random_weights": self.random_weights,
                "graph_sha256": self.manifest["graph"]["sha256"],
                "fidelity": self.manifest.get("fidelity", {}),
            },
            "votes": {
                "calibrated": self.rules.calibrated,
                "source": self.rules.provenance.get("source"),
                "created": self.rules.provenance.get("created"),
                "warning": self.rules.provenance.get("warning"),
                "cross_validated": _headline(self.rules.provenance.get("cross_validated")),
                "window_seconds": self.rules.provenance.get("window_seconds"),
            },
            "window_seconds": self.settings.window_seconds,
            "deadline_seconds": self.settings.deadline_seconds,
            "encoder_seconds_per_audio_second": round(self.pace.seconds_per_audio_second, 4),
        }


def _headline(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if not metrics:
        return None
    return {k: metrics[k] for k in ("clips", "balanced_accuracy", "eer", "ece") if k in metrics}


def load_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    folder = settings.artifacts_dir
    graph, manifest_path, votes_path = (folder / n for n in ("model.onnx", "manifest.json", "votes.json"))
    for path in (graph, manifest_path, votes_path):
        if not path.is_file():
            raise ArtifactsError(
                f"{path} is missing: create the artifacts with `python -m export --out {folder}` "
                "(add --random-init base when the model hub is unreachable)"
            )
    manifest = json.loads(manifest_path.read_text())
    rules = VoteRules.load(votes_path)
    if rules.provenance.get("graph_sha256") != manifest["graph"]["sha256"]:
        raise ArtifactsError(
            f"{votes_path} was learned for another graph: re-run python -m export.calibrate "
            f"(or python -m export) so the votes match {graph}"
        )
    encoder = Encoder.load(graph, settings.threads)
    pace = measure_pace(encoder)
    release_free_memory()
    limits = AudioLimits(max_seconds=settings.max_audio_seconds, min_seconds=settings.min_audio_seconds)
    limiter = InferenceLimiter(settings.max_concurrent, settings.max_queue, settings.queue_timeout_seconds)
    rate_limit = RateLimit(settings.rate_limit_per_minute)
    uploads = ByteBudget(UPLOAD_BUDGET_BODIES * settings.max_body_bytes)
    return Runtime(settings, encoder, rules, manifest, metrics, limiter, rate_limit, pace, uploads, limits)


def measure_pace(encoder: Encoder, seconds: float = 0.5) -> EncoderPace:
    """One run before traffic: it allocates what every run needs, and its time, slower than any
    later run, stands for the pace until the first request's run replaces it."""
    started = time.perf_counter()
    encoder(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32))
    return EncoderPace((time.perf_counter() - started) / seconds)
