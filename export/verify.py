"""Numeric check of the INT8 graph against the torch FP32 reference."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from transformers import Wav2Vec2Model

from export.model import torch_hidden_states
from service.detector.encoder import Encoder
from service.detector.features import normalize_waveform

LATENCY_REPEATS = 5


@dataclass(frozen=True)
class Fidelity:
    frame_cosine_min: float
    frame_cosine_mean: float
    relative_l2: float
    clips: int
    frames: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(model: Wav2Vec2Model, encoder: Encoder, clips: Sequence[np.ndarray]) -> Fidelity:
    cosines: list[np.ndarray] = []
    errors: list[float] = []
    for clip in clips:
        reference = reference_hidden(model, clip)
        quantized = encoder(clip)
        cosines.append(frame_cosine(reference, quantized))
        errors.append(float(np.linalg.norm(quantized - reference) / np.linalg.norm(reference)))
    every = np.concatenate(cosines)
    return Fidelity(
        frame_cosine_min=float(every.min()),
        frame_cosine_mean=float(every.mean()),
        relative_l2=float(np.mean(errors)),
        clips=len(clips),
        frames=len(every),
    )


def reference_hidden(model: Wav2Vec2Model, clip: np.ndarray) -> np.ndarray:
    batch = torch.from_numpy(normalize_waveform(clip)[np.newaxis, :])
    return torch_hidden_states(model, batch)[0].numpy()


def frame_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    return np.asarray(np.sum(a * b, axis=1) / norms)


def latency_ms(model: Wav2Vec2Model, encoder: Encoder, clip: np.ndarray) -> dict[str, float]:
    """Median wall time of one forward pass over a 5 s clip, torch FP32 and INT8 graph."""
    return {
        "torch_fp32_ms": _median_ms(lambda: reference_hidden(model, clip)),
        "onnx_int8_ms": _median_ms(lambda: encoder(clip)),
    }


def _median_ms(run: Callable[[], object]) -> float:
    run()
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 1)
