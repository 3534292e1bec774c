"""Load wav2vec2 in torch, pretrained or randomly initialised, ready for ONNX export."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import torch
from huggingface_hub import constants
from torch.nn.utils import parametrize
from transformers import Wav2Vec2Config, Wav2Vec2Model

# Same conv strides as the base model (one frame per 20 ms), everything else small.
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (32,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}
HUB_PROBE_SECONDS = 5.0
RANDOM_CONFIGS: dict[str, dict[str, Any]] = {"base": {}, "tiny": TINY_CONFIG}


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says what to do instead."""


@dataclass(frozen=True)
class ModelSource:
    model_id: str
    revision: str | None = None
    random_init: str | None = None
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        if self.random_init:
            return {
                "kind": "random-init",
                "architecture": self.random_init,
                "seed": self.seed,
                "warning": "random weights: not the pretrained model",
            }
        return {"kind": "pretrained", "model_id": self.model_id, "revision": self.revision}


def load_model(source: ModelSource) -> tuple[Wav2Vec2Model, ModelSource]:
    """The model in eval mode, with the revision actually resolved when pretrained."""
    model = _random_model(source) if source.random_init else _pretrained_model(source)
    model.eval()
    strip_weight_norm(model)
    if not source.random_init:
        source = ModelSource(source.model_id, getattr(model.config, "_commit_hash", None))
    return model, source


def _random_model(source: ModelSource) -> Wav2Vec2Model:
    if source.random_init not in RANDOM_CONFIGS:
        raise ModelLoadError(f"--random-init must be one of {sorted(RANDOM_CONFIGS)}")
    torch.manual_seed(source.seed)
    return Wav2Vec2Model(Wav2Vec2Config(**RANDOM_CONFIGS[source.random_init]))


def _pretrained_model(source: ModelSource) -> Wav2Vec2Model:
    try:
        model = _from_cache_or_hub(source)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"could not load {source.model_id!r} ({exc.__class__.__name__}: {exc}). "
            "Without access to the model hub, use --random-init base (random weights, same "
            "architecture) or pass --model a local directory holding the weights."
        ) from exc
    assert isinstance(model, Wav2Vec2Model)
    return model


def _from_cache_or_hub(source: ModelSource) -> Wav2Vec2Model:
    """A local folder or cached copy first; the hub only after a quick reachability check."""
    try:
        return Wav2Vec2Model.from_pretrained(source.model_id, revision=source.revision, local_files_only=True)
    except OSError:
        pass
    host = urlsplit(constants.ENDPOINT)
    port = host.port or (443 if host.scheme == "https" else 80)
    with socket.create_connection((host.hostname or "", port), timeout=HUB_PROBE_SECONDS):
        pass
    return Wav2Vec2Model.from_pretrained(source.model_id, revision=source.revision)


def strip_weight_norm(model: Wav2Vec2Model) -> None:
    """Fold the positional conv's weight-norm parametrization into a plain weight."""
    conv = model.encoder.pos_conv_embed.conv
    if parametrize.is_parametrized(conv):
        parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)


def torch_hidden_states(model: Wav2Vec2Model, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(batch).last_hidden_state
