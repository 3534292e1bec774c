"""The five-vote rule: learned thresholds, a majority, a calibrated confidence, an explanation."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from service.features import FEATURE_NAMES

AI = "AI_GENERATED"
HUMAN = "HUMAN"
LABELS = (AI, HUMAN)
DIRECTIONS = ("above", "below")

_READABLE = {
    "audio_energy": "audio energy",
    "audio_variance": "audio variance",
    "zero_crossing_rate": "zero-crossing rate",
    "temporal_variation": "temporal variation",
    "hidden_state_variance": "wav2vec2 hidden-state variance",
}


class VotesFileError(ValueError):
    """votes.json is missing, malformed or incomplete."""


@dataclass(frozen=True)
class VoteRule:
    """One vote: AI when ``feature`` is on the ``ai_when`` side of ``threshold``."""

    feature: str
    threshold: float
    ai_when: str
    scale: float

    def supports(self, value: float) -> str:
        above = value > self.threshold
        return AI if above == (self.ai_when == "above") else HUMAN


@dataclass(frozen=True)
class Vote:
    name: str
    value: float
    threshold: float
    supports: str
    strength: float  # distance from the threshold in units of the feature's spread

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 6),
            "threshold": round(self.threshold, 6),
            "supports": self.supports,
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
            key=lambda v: -v.strength,
        )
        kind = "AI-generated" if self.classification == AI else "human"
        led = " and ".join(_describe(v) for v in winners[:2])
        dissent = [_READABLE[v.name] for v in self.votes if v.supports != self.classification]
        tail = f"; {' and '.join(dissent)} disagreed" if dissent else ""
        return f"{len(winners)} of {len(self.votes)} signals point to {kind} speech, led by {led}{tail}."


@dataclass(frozen=True)
class VoteRules:
    rules: tuple[VoteRule, ...]
    ai_probability_by_count: tuple[float, ...]
    calibrated: bool
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def decide(self, features: Mapping[str, float]) -> Verdict:
        votes = tuple(_vote(rule, features[rule.feature]) for rule in self.rules)
        ai_votes = sum(v.supports == AI for v in votes)
        ai_probability = self.ai_probability_by_count[ai_votes]
        classification = AI if 2 * ai_votes > len(votes) else HUMAN
        confidence = ai_probability if classification == AI else 1.0 - ai_probability
        return Verdict(classification, confidence, ai_probability, votes)

    def to_json(self) -> dict[str, Any]:
        return {
            "calibrated": self.calibrated,
            "votes": [asdict(rule) for rule in self.rules],
            "ai_probability_by_count": list(self.ai_probability_by_count),
            "provenance": dict(self.provenance),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> VoteRules:
        try:
            raw = json.loads(path.read_text())
            return cls.from_json(raw)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise VotesFileError(f"{path}: not a usable votes file ({exc})") from exc

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VoteRules:
        rules = tuple(VoteRule(**entry) for entry in raw["votes"])
        _validate(rules, raw["ai_probability_by_count"])
        return cls(
            rules=rules,
            ai_probability_by_count=tuple(float(p) for p in raw["ai_probability_by_count"]),
            calibrated=bool(raw["calibrated"]),
            provenance=raw.get("provenance", {}),
        )


def _vote(rule: VoteRule, value: float) -> Vote:
    supports = rule.supports(value)
    return Vote(rule.feature, value, rule.threshold, supports, abs(value - rule.threshold) / rule.scale)


def _describe(vote: Vote) -> str:
    side = "above" if vote.value > vote.threshold else "below"
    return f"{_READABLE[vote.name]} ({vote.value:.3g}, {side} the learned threshold {vote.threshold:.3g})"


def _validate(rules: Sequence[VoteRule], probabilities: Sequence[float]) -> None:
    names = [rule.feature for rule in rules]
    if sorted(names) != sorted(FEATURE_NAMES):
        raise VotesFileError(f"votes must cover exactly {', '.join(FEATURE_NAMES)}; got {names}")
    if any(rule.ai_when not in DIRECTIONS or rule.scale <= 0 for rule in rules):
        raise VotesFileError(f"each vote needs ai_when in {DIRECTIONS} and a positive scale")
    if len(probabilities) != len(rules) + 1 or not all(0 <= p <= 1 for p in probabilities):
        raise VotesFileError("ai_probability_by_count needs one probability in [0, 1] per vote count")
