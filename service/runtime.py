"""What the service loads once at start-up: the graph, its manifest and its votes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.audio import AudioLimits, decode_audio
from service.detector import Detection, Window, analyse_window, detect
from service.limiter import InferenceLimiter, RateLimit
from service.malloc import release_free_memory
from service.metrics import Metrics
from service.model import Encoder, create_session
from service.settings import Settings
from service.verdict import VoteRules


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
    limits: AudioLimits = field(default_factory=AudioLimits)
    ready: bool = True

    def analyse(self, audio: bytes) -> Detection:
        """Blocking: decode and classify. Runs in the thread pool."""
        try:
            waveform = decode_audio(audio, self.limits)
            started = time.perf_counter()
            detection = detect(self.encoder, self.rules, waveform, self.settings.window_seconds)
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
        source = self.manifest.get("source", {})
        return {
            "status": "ok" if self.ready else "unavailable",
            "model": {
                "source": source,
                "random_weights": source.get("kind") == "random-init",
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
    encoder = Encoder(create_session(graph, settings.threads))
    encoder(np.zeros(16_000, dtype=np.float32))  # first run allocates; do it before traffic
    release_free_memory()
    limits = AudioLimits(max_seconds=settings.max_audio_seconds, min_seconds=settings.min_audio_seconds)
    limiter = InferenceLimiter(settings.max_concurrent, settings.max_queue, settings.queue_timeout_seconds)
    rate_limit = RateLimit(settings.rate_limit_per_minute)
    return Runtime(settings, encoder, rules, manifest, metrics, limiter, rate_limit, limits)
