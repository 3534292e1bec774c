"""The five-vote rule: five small calibrated models, a majority, a calibrated confidence, an explanation.

Each vote (service.detector.measurements.VOTES) is a logistic model over its own standardised measurements and
gives P(AI). A vote supports AI when its P(AI) is above 0.5 (its logit above 0); the majority of
the five decides. The confidence is a Platt mapping of the mean of the five vote logits, held on
the majority's side of 0.5 so it never contradicts the decision. Every coefficient comes from
votes.json.

The rule is written once, over a clips x measurements array (``VoteRules.predict``): the service
decides one clip with it (``VoteRules.decide``), calibration scores whole corpora with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from service.detector.measurements import BY_NAME, MEASUREMENTS, VOTE_NAMES
from service.labels import AI, HUMAN

Z_CLIP = 4.0  # standardised measurements are clipped here: an unseen channel cannot run away


class VotesFileError(ValueError):
    """votes.json is missing, malformed or incomplete."""


def standardise(columns: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """z-scores, clipped to +-Z_CLIP."""
    return np.asarray(np.clip((columns - mean) / scale, -Z_CLIP, Z_CLIP))


def vote_logits(models: Sequence[VoteModel], values: np.ndarray) -> np.ndarray:
    """clips x votes, from ``values``: clips x MEASUREMENTS (the registry's order)."""
    return np.stack([model.logits(values) for model in models], axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise, without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.asarray(np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


@dataclass(frozen=True)
class VoteModel:
    """One vote: logit P(AI) = bias + sum_j weight_j * z_j, where z_j = clip((x_j - mean_j) / scale_j)."""

    name: str
    measurements: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def contributions(self, values: np.ndarray) -> np.ndarray:
        """clips x this vote's measurements: each measurement's share of the logit; ``values`` is
        clips x MEASUREMENTS (the registry's order)."""
        columns = values[:, [MEASUREMENTS.index(m) for m in self.measurements]]
        return np.asarray(standardise(columns, np.array(self.mean), np.array(self.scale)) * self.weights)

    def logits(self, values: np.ndarray) -> np.ndarray:
        """One logit per clip (row of ``values``)."""
        # summed left to right (a running sum, not numpy's pairwise sum): the same bits as a plain loop
        return np.asarray(self.bias + self.contributions(values).cumsum(axis=1)[:, -1])

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "measurements": list(self.measurements)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VoteModel:
        _refuse_squared_terms(raw)
        return cls(
            name=str(raw["name"]),
            measurements=tuple(str(m) for m in raw["measurements"]),
            mean=tuple(float(v) for v in raw["mean"]),
            scale=tuple(float(v) for v in raw["scale"]),
            weights=tuple(float(v) for v in raw["weights"]),
            bias=float(raw["bias"]),
        )


def _refuse_squared_terms(raw: Mapping[str, Any]) -> None:
    """votes.json files written before the squared terms went carry ``quadratic``: all zeros (the
    shipped recipe's) loads as the linear vote it is; anything else would score differently."""
    quadratic = raw.get("quadratic", ())
    if len(quadratic) not in (0, len(raw["measurements"])):
        raise VotesFileError(f"vote {raw['name']}: quadratic, if present, needs one value per measurement")
    if any(float(q) != 0.0 for q in quadratic):
        raise VotesFileError(
            f"vote {raw['name']}: squared terms (quadratic) are no longer supported; they must be 0 "
            "or absent: recalibrate (voicecheck calibrate)"
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

    def predict(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(AI), predicted AI) per clip (row of ``values``): ``decide``'s figures for many clips."""
        return decision(self.combine, vote_logits(self.models, values))

    def decide(self, features: Mapping[str, float]) -> Verdict:
        row = np.array([[features[m] for m in MEASUREMENTS]])
        logits = vote_logits(self.models, row)
        ai_probability, predicted_ai = decision(self.combine, logits)
        classification = AI if predicted_ai[0] else HUMAN
        p = float(ai_probability[0])
        confidence = p if classification == AI else 1.0 - p
        votes = tuple(
            _vote(model, model.contributions(row)[0], float(logit))
            for model, logit in zip(self.models, logits[0], strict=True)
        )
        return Verdict(classification, confidence, p, votes)

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


def majority(logits: np.ndarray) -> np.ndarray:
    """Per clip (row of clips x votes logits): do more than half of the votes put P(AI) above 0.5?"""
    return np.asarray(2 * np.sum(logits > 0, axis=1) > logits.shape[1])


def decision(combine: tuple[float, float], logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(AI), predicted AI) per clip from its vote logits: the majority decides; P(AI) is Platt on
    the mean vote logit, held on the majority's side of 0.5 (the confidence is its distance from 0)."""
    predicted_ai = majority(logits)
    slope, intercept = combine
    p = sigmoid(slope * logits.sum(axis=1) / logits.shape[1] + intercept)
    return np.where(predicted_ai, np.maximum(p, 0.5), np.minimum(p, 0.5)), predicted_ai


def _vote(model: VoteModel, contributions: np.ndarray, logit: float) -> Vote:
    supports = AI if logit > 0 else HUMAN
    sign = 1.0 if supports == AI else -1.0
    leading = max(zip(contributions.tolist(), model.measurements, strict=True), key=lambda cm: sign * cm[0])[
        1
    ]
    return Vote(model.name, float(sigmoid(np.array(logit))), supports, leading)


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
        sizes = {len(model.mean), len(model.scale), len(model.weights)}
        if sizes != {len(expected)}:
            raise VotesFileError(f"vote {model.name}: mean, scale and weights need one value per measurement")
        if any(not s > 0 for s in model.scale):
            raise VotesFileError(f"vote {model.name}: every scale must be positive")
        values = (*model.mean, *model.scale, *model.weights, model.bias)
        if not all(math.isfinite(v) for v in values):
            raise VotesFileError(f"vote {model.name}: coefficients must be finite")
    if not all(math.isfinite(v) for v in combine) or combine[0] < 0:
        raise VotesFileError("combine needs a finite, non-negative slope and a finite intercept")
