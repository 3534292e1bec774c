"""The five-vote rule: five small calibrated models, a majority, a calibrated confidence, an explanation.

Each vote (service.votes.VOTES) is a logistic model over its own standardised measurements and
gives P(AI). A vote supports AI when its P(AI) is above 0.5; the majority of the five decides.
The confidence is a Platt mapping of the mean of the five vote logits, held on the majority's
side of 0.5 so it never contradicts the decision. Every coefficient comes from votes.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from service.labels import AI, HUMAN
from service.votes import BY_NAME, VOTE_NAMES

Z_CLIP = 4.0  # standardised measurements are clipped here: an unseen channel cannot run away


class VotesFileError(ValueError):
    """votes.json is missing, malformed or incomplete."""


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass(frozen=True)
class VoteModel:
    """One vote: logit P(AI) = bias + sum_j (weight_j * z_j + quadratic_j * z_j^2), where
    z_j = clip((x_j - mean_j) / scale_j). The squared terms let a vote say "too far from the
    typical human value, either way" (too periodic or too noisy, too flat or too jumpy)."""

    name: str
    measurements: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    quadratic: tuple[float, ...]
    bias: float

    def contributions(self, values: Mapping[str, float]) -> list[float]:
        out = []
        for m, mu, s, w, q in zip(
            self.measurements, self.mean, self.scale, self.weights, self.quadratic, strict=True
        ):
            z = min(Z_CLIP, max(-Z_CLIP, (values[m] - mu) / s))
            out.append(w * z + q * z * z)
        return out

    def logit(self, values: Mapping[str, float]) -> float:
        return self.bias + sum(self.contributions(values))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "measurements": list(self.measurements)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VoteModel:
        return cls(
            name=str(raw["name"]),
            measurements=tuple(str(m) for m in raw["measurements"]),
            mean=tuple(float(v) for v in raw["mean"]),
            scale=tuple(float(v) for v in raw["scale"]),
            weights=tuple(float(v) for v in raw["weights"]),
            quadratic=tuple(float(v) for v in raw["quadratic"]),
            bias=float(raw["bias"]),
        )


@dataclass(frozen=True)
class Vote:
    name: str
    probability: float  # P(AI) from this vote's model
    supports: str
    leading: str  # the measurement that pushed hardest towards ``supports``

    @property
    def label(self) -> str:
        return BY_NAME[self.name].label

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "probability": round(self.probability, 4),
            "supports": self.supports,
            "leading": self.leading,
        }


@dataclass(frozen=True)
class Verdict:
    classification: str
    confidence: float
    ai_probability: float
    votes: tuple[Vote, ...]

    def explanation(self) -> str:
        winners = sorted(
            (v for v in self.votes if v.supports == self.classification),
            key=lambda v: -abs(v.probability - 0.5),
        )
        kind = "AI-generated" if self.classification == AI else "human"
        led = " and ".join(_describe(v) for v in winners[:2])
        dissent = [v.label for v in self.votes if v.supports != self.classification]
        tail = f"; {' and '.join(dissent)} disagreed" if dissent else ""
        return f"{len(winners)} of {len(self.votes)} signals point to {kind} speech, led by {led}{tail}."


@dataclass(frozen=True)
class VoteProvenance:
    """How the votes were learned: by export (provisional) or by vote calibration on a corpus."""

    graph_sha256: str  # the graph whose hidden states the hidden-state vote was fitted to
    source: str = "unknown"  # "export" or "calibrate"
    layers: int | None = None  # that graph's transformer layers (the hidden state read is the last's)
    created: str | None = None
    warning: str | None = None
    model: str | None = None
    corpus: dict[str, Any] | None = None
    window_seconds: float | None = None
    max_encoded_seconds: float | None = None
    excluded_families: list[str] | None = None
    cross_validated: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VoteProvenance:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True)
class VoteRules:
    models: tuple[VoteModel, ...]
    combine: tuple[float, float]  # Platt (slope, intercept) on the mean vote logit
    calibrated: bool
    provenance: VoteProvenance

    def vote_logits(self, features: Mapping[str, float]) -> list[float]:
        return [model.logit(features) for model in self.models]

    def decide(self, features: Mapping[str, float]) -> Verdict:
        votes = tuple(_vote(model, features) for model in self.models)
        ai_votes = sum(v.supports == AI for v in votes)
        classification = AI if 2 * ai_votes > len(votes) else HUMAN
        ai_probability = combined_probability(self.combine, self.vote_logits(features), classification)
        confidence = ai_probability if classification == AI else 1.0 - ai_probability
        return Verdict(classification, confidence, ai_probability, votes)

    def to_json(self) -> dict[str, Any]:
        return {
            "calibrated": self.calibrated,
            "votes": [model.to_json() for model in self.models],
            "combine": {"slope": self.combine[0], "intercept": self.combine[1]},
            "provenance": self.provenance.to_json(),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> VoteRules:
        try:
            raw = json.loads(path.read_text())
            return cls.from_json(raw)
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, VotesFileError):
                raise
            raise VotesFileError(f"{path}: not a usable votes file ({exc})") from exc

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VoteRules:
        models = tuple(VoteModel.from_json(entry) for entry in raw["votes"])
        combine = (float(raw["combine"]["slope"]), float(raw["combine"]["intercept"]))
        _validate(models, combine)
        provenance = VoteProvenance.from_json(raw["provenance"])
        return cls(models, combine, bool(raw["calibrated"]), provenance)


def combined_probability(combine: tuple[float, float], logits: Sequence[float], classification: str) -> float:
    """P(AI) from the mean vote logit, held on the majority's side of 0.5."""
    slope, intercept = combine
    p = sigmoid(slope * sum(logits) / len(logits) + intercept)
    return max(p, 0.5) if classification == AI else min(p, 0.5)


def _vote(model: VoteModel, features: Mapping[str, float]) -> Vote:
    contributions = model.contributions(features)
    probability = sigmoid(model.bias + sum(contributions))
    supports = AI if probability > 0.5 else HUMAN
    sign = 1.0 if supports == AI else -1.0
    leading = max(zip(contributions, model.measurements, strict=True), key=lambda cm: sign * cm[0])[1]
    return Vote(model.name, probability, supports, leading)


def _describe(vote: Vote) -> str:
    return f"{vote.label} (P(AI) {vote.probability:.2f}, mostly {vote.leading.replace('_', ' ')})"


def _validate(models: Sequence[VoteModel], combine: tuple[float, float]) -> None:
    names = [model.name for model in models]
    if names != list(VOTE_NAMES):
        raise VotesFileError(f"votes must be exactly {', '.join(VOTE_NAMES)}, in that order; got {names}")
    for model in models:
        expected = BY_NAME[model.name].measurements
        if model.measurements != expected:
            raise VotesFileError(f"vote {model.name} must use the measurements {expected}")
        sizes = {len(model.mean), len(model.scale), len(model.weights), len(model.quadratic)}
        if sizes != {len(expected)}:
            raise VotesFileError(
                f"vote {model.name}: mean, scale, weights and quadratic need one value per measurement"
            )
        if any(not s > 0 for s in model.scale):
            raise VotesFileError(f"vote {model.name}: every scale must be positive")
        values = (*model.mean, *model.scale, *model.weights, *model.quadratic, model.bias)
        if not all(math.isfinite(v) for v in values):
            raise VotesFileError(f"vote {model.name}: coefficients must be finite")
    if not all(math.isfinite(v) for v in combine) or combine[0] < 0:
        raise VotesFileError("combine needs a finite, non-negative slope and a finite intercept")
