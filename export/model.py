"""Load wav2vec2 in torch, pretrained or randomly initialised, ready for ONNX export."""

from __future__ import annotations

import socket
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import urlsplit

import torch
from huggingface_hub import constants
from torch.nn.utils import parametrize
from transformers import Wav2Vec2Config, Wav2Vec2Model

from service.detector.artifacts import ModelOrigin

PRETRAINED = "facebook/wav2vec2-base"
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
# Transformer layers kept by default: the first 4-6 layers of a base-size model are the most
# discriminative for deepfake detection (docs/export.md#how-many-layers).
DEFAULT_LAYERS = 4
HUB_PROBE_SECONDS = 5.0
CHUNKED_LAYERS = 3
ALL_LAYERS = 12  # wav2vec2-base's transformer layers; the most ``--layers`` takes
RANDOM_CONFIGS: dict[str, dict[str, Any]] = {"base": {}, "tiny": TINY_CONFIG}


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says what to do instead."""


@dataclass(frozen=True)
class ModelSource:
    model_id: str
    revision: str | None = None
    random_init: str | None = None
    seed: int = 0
    layers: int = DEFAULT_LAYERS  # transformer layers kept (all of a model that has fewer)

    @classmethod
    def of(cls, origin: ModelOrigin) -> ModelSource:
        """The source a manifest records, to load the same model again (every layer when it does
        not say how many: manifests from before ``--layers``)."""
        random_init = origin.architecture if origin.random_weights else None
        layers = origin.layers or ALL_LAYERS
        return cls(origin.model_id or PRETRAINED, origin.revision, random_init, origin.seed or 0, layers)

    def describe(self) -> ModelOrigin:
        if self.random_init:
            return ModelOrigin(
                kind="random-init",
                architecture=self.random_init,
                seed=self.seed,
                layers=self.layers,
                warning="random weights: not the pretrained model",
            )
        return ModelOrigin(
            kind="pretrained", model_id=self.model_id, revision=self.revision, layers=self.layers
        )


def load_model(source: ModelSource) -> tuple[Wav2Vec2Model, ModelSource]:
    """The model in eval mode, cut to ``source.layers``, with the revision actually resolved when
    pretrained and the layers actually kept."""
    model = _random_model(source) if source.random_init else _pretrained_model(source)
    model.eval()
    strip_weight_norm(model)
    layers = keep_layers(model, source.layers)
    revision = source.revision if source.random_init else getattr(model.config, "_commit_hash", None)
    return model, replace(source, revision=revision, layers=layers)


def keep_layers(model: Wav2Vec2Model, layers: int) -> int:
    """Drop the transformer layers after ``layers`` (a model with fewer keeps them all); returns
    how many are kept. In base-size models (``do_stable_layer_norm=False``) the encoder's LayerNorm
    comes before the layers, so the cut model's last hidden state is the full model's
    ``hidden_states[layers]``."""
    if layers < 1:
        raise ValueError(f"--layers must be at least 1, not {layers}")
    layers = min(layers, len(model.encoder.layers))
    model.encoder.layers = model.encoder.layers[:layers]
    model.config.num_hidden_layers = layers
    return layers


def _random_model(source: ModelSource) -> Wav2Vec2Model:
    if source.random_init not in RANDOM_CONFIGS:
        raise ModelLoadError(f"--random-init must be one of {sorted(RANDOM_CONFIGS)}")
    torch.manual_seed(source.seed)
    return Wav2Vec2Model(Wav2Vec2Config(**RANDOM_CONFIGS[source.random_init]))


def _pretrained_model(source: ModelSource) -> Wav2Vec2Model:
    try:
        model = _from_cache_or_hub(source)
    except (OSError, ValueError) as exc:
        offline = isinstance(exc, socket.gaierror | TimeoutError | ConnectionError)
        reason = "the model hub cannot be reached from here" if offline else f"{type(exc).__name__}: {exc}"
        raise ModelLoadError(
            f"could not load {source.model_id!r} ({reason}). "
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


class FoldedFirstLayers(torch.nn.Module):
    """wav2vec2-base's first conv layers, same maths, far less peak memory.

    The first layer (conv -> GroupNorm with one group per channel -> GELU) makes the graph's
    largest activation, 512 channels x 50 frames per 1/10 s, and the norm, global over time, kept
    two copies of it alive. The norm's per-channel mean and variance follow from the conv weights
    and the covariance of the waveform's 10-sample frames, so they fold into per-clip conv weights.
    What is left is local in time: the first layer and the ``following`` ones run on ``chunks``
    overlapping slices of the clip, and only the last one's (four times smaller) outputs are
    joined."""

    weight: torch.Tensor
    gamma: torch.Tensor
    beta: torch.Tensor
    framer: torch.Tensor

    def __init__(
        self,
        first: tuple[torch.nn.Conv1d, torch.nn.GroupNorm, torch.nn.Module],
        following: list[tuple[torch.nn.Conv1d, torch.nn.Module]],
        chunks: int = 4,
    ) -> None:
        super().__init__()
        conv, norm, self.activation = first
        self.following = torch.nn.ModuleList(torch.nn.Sequential(*layer) for layer in following)
        self.stride = conv.stride[0]
        self.eps = norm.eps
        self.chunks = chunks
        # frames of the first layer that one output of the following layers sees, and its step
        self.field, self.step = 1, 1
        for following_conv, _ in following:
            self.field += (following_conv.kernel_size[0] - 1) * self.step
            self.step *= following_conv.stride[0]
        self.register_buffer("weight", conv.weight.detach().squeeze(1).clone())  # channels x kernel
        self.register_buffer("gamma", norm.weight.detach().clone())
        self.register_buffer("beta", norm.bias.detach().clone())
        self.register_buffer("framer", torch.eye(conv.kernel_size[0]).unsqueeze(1))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        frames = torch.nn.functional.conv1d(waveform, self.framer, stride=self.stride)  # B x K x T
        frames = torch.cat([frames, torch.ones_like(frames[:, :1])], 1)  # a ones row adds the shift
        weights = self.normalized_weights(frames)
        steps = (frames.shape[-1] - self.field) // self.step + 1
        outputs = []
        for chunk in range(self.chunks):
            start, stop = steps * chunk // self.chunks, steps * (chunk + 1) // self.chunks
            hidden = self.activation(
                weights @ frames[..., self.step * start : self.step * (stop - 1) + self.field]
            )
            for layer in self.following:
                hidden = layer(hidden)
            outputs.append(hidden)
        return torch.cat(outputs, -1)

    def normalized_weights(self, frames: torch.Tensor) -> torch.Tensor:
        """Per clip: the conv weights scaled by gamma / std and the shift beta - scale * mean."""
        samples, ones = frames[:, :-1], frames[:, -1:]
        mean = samples.mean(-1, keepdim=True)
        centred = samples - mean
        covariance = centred @ centred.transpose(1, 2) / ones.sum(-1, keepdim=True)
        variance = ((self.weight @ covariance) * self.weight).sum(-1)  # B x C
        scale = self.gamma * torch.rsqrt(variance + self.eps)
        shift = self.beta - scale * (self.weight @ mean).squeeze(-1)
        return torch.cat([scale.unsqueeze(-1) * self.weight, shift.unsqueeze(-1)], -1)


def for_export(model: Wav2Vec2Model) -> Wav2Vec2Model:
    """A copy to export, with the first layers folded; ``model`` stays the reference to verify
    against."""
    copy = deepcopy(model)
    fold_first_layers(copy)
    return copy


def fold_first_layers(model: Wav2Vec2Model) -> None:
    """Swap in FoldedFirstLayers where the first layer has a per-channel GroupNorm (base models).
    Three layers are chunked: the last joined output is 4x smaller than the first layer's, and
    the shortest input wav2vec2 takes (400 samples) still gives every chunk an output."""
    layers = model.feature_extractor.conv_layers
    norm = getattr(layers[0], "layer_norm", None)
    if not (isinstance(norm, torch.nn.GroupNorm) and norm.num_groups == norm.num_channels):
        return
    convs = [cast(torch.nn.Conv1d, layer.conv) for layer in layers[:CHUNKED_LAYERS]]
    activations = [cast(torch.nn.Module, layer.activation) for layer in layers[:CHUNKED_LAYERS]]
    layers[0] = FoldedFirstLayers(
        (convs[0], norm, activations[0]), list(zip(convs[1:], activations[1:], strict=True))
    )
    for index in range(1, CHUNKED_LAYERS):
        layers[index] = torch.nn.Identity()


def torch_hidden_states(model: Wav2Vec2Model, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(batch).last_hidden_state
