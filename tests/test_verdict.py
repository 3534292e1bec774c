from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.features import FEATURE_NAMES
from service.verdict import AI, HUMAN, VoteRules, VotesFileError


def rules_json(probabilities: list[float] | None = None) -> dict[str, object]:
    return {
        "calibrated": True,
        "votes": [
            {"feature": name, "threshold": 1.0, "ai_when": "above" if i % 2 else "below", "scale": 0.5}
            for i, name in enumerate(FEATURE_NAMES)
        ],
        "ai_probability_by_count": probabilities or [0.02, 0.1, 0.3, 0.7, 0.9, 0.98],
        "provenance": {"graph_sha256": "x"},
    }


def features(ai_names: set[str]) -> dict[str, float]:
    """Values that put exactly the named features on the AI side."""
    values = {}
    for i, name in enumerate(FEATURE_NAMES):
        ai_above = i % 2 == 1
        wants_ai = name in ai_names
        values[name] = 1.5 if ai_above == wants_ai else 0.5
    return values


@pytest.mark.parametrize("ai_count", range(6))
def test_majority_decides_and_confidence_is_the_returned_class_probability(ai_count: int) -> None:
    rules = VoteRules.from_json(rules_json())
    verdict = rules.decide(features(set(FEATURE_NAMES[:ai_count])))
    assert sum(v.supports == AI for v in verdict.votes) == ai_count
    assert verdict.classification == (AI if ai_count >= 3 else HUMAN)
    probability = rules.ai_probability_by_count[ai_count]
    expected = probability if verdict.classification == AI else 1 - probability
    assert verdict.confidence == pytest.approx(expected)


def test_explanation_names_the_deciding_signals_and_their_values() -> None:
    rules = VoteRules.from_json(rules_json())
    values = features({"zero_crossing_rate", "temporal_variation", "audio_energy", "audio_variance"})
    values["temporal_variation"] = 3.5  # the strongest AI vote, far above its threshold
    text = rules.decide(values).explanation()
    assert text.startswith("4 of 5 signals point to AI-generated speech, led by temporal variation (3.5")
    assert "hidden-state variance disagreed" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["votes"].pop(), "exactly"),
        (lambda raw: raw["votes"][0].update(ai_when="sideways"), "ai_when"),
        (lambda raw: raw["votes"][0].update(scale=0), "scale"),
        (lambda raw: raw["ai_probability_by_count"].pop(), "probability"),
        (lambda raw: raw["ai_probability_by_count"].__setitem__(0, 1.5), "probability"),
    ],
)
def test_bad_votes_files_are_refused(change: object, message: str, tmp_path: Path) -> None:
    raw = rules_json()
    change(raw)  # type: ignore[operator]
    path = tmp_path / "votes.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(VotesFileError, match=message):
        VoteRules.load(path)


def test_votes_file_round_trips(tmp_path: Path) -> None:
    rules = VoteRules.from_json(rules_json())
    rules.save(tmp_path / "votes.json")
    assert VoteRules.load(tmp_path / "votes.json") == rules
