from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from service.detector.measurements import MEASUREMENTS, VOTES
from service.detector.votes import Z_CLIP, VoteRules, VotesFileError, decision, sigmoid
from service.labels import AI, HUMAN


def rules_json(slope: float = 1.0, intercept: float = 0.0) -> dict[str, object]:
    """Each vote's logit is 2 * its first measurement (mean 0, scale 1); the others weigh nothing."""
    return {
        "calibrated": True,
        "votes": [
            {
                "name": spec.name,
                "measurements": list(spec.measurements),
                "mean": [0.0] * len(spec.measurements),
                "scale": [1.0] * len(spec.measurements),
                "weights": [2.0] + [0.0] * (len(spec.measurements) - 1),
                "bias": 0.0,
            }
            for spec in VOTES
        ],
        "combine": {"slope": slope, "intercept": intercept},
        "provenance": {"graph_sha256": "x"},
    }


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def features(ai_names: set[str], strength: float = 1.0) -> dict[str, float]:
    """Measurements that put exactly the named votes on the AI side."""
    values = dict.fromkeys(MEASUREMENTS, 0.0)
    for spec in VOTES:
        values[spec.measurements[0]] = strength if spec.name in ai_names else -strength
    return values


@pytest.mark.parametrize("ai_count", range(6))
def test_majority_decides_and_confidence_never_contradicts_it(ai_count: int) -> None:
    rules = VoteRules.from_json(rules_json(slope=3.0, intercept=-1.0))
    verdict = rules.decide(features({v.name for v in VOTES[:ai_count]}))
    assert sum(v.supports == AI for v in verdict.votes) == ai_count
    assert verdict.classification == (AI if ai_count >= 3 else HUMAN)
    assert verdict.confidence >= 0.5
    assert (verdict.ai_probability >= 0.5) == (verdict.classification == AI)
    expected = verdict.ai_probability if verdict.classification == AI else 1 - verdict.ai_probability
    assert verdict.confidence == pytest.approx(expected)


def test_vote_probability_is_the_logistic_of_the_standardised_clipped_measurements() -> None:
    raw = rules_json()
    rest = len(VOTES[0].measurements) - 1
    raw["votes"][0].update(mean=[1.0] + [0.0] * rest, scale=[0.5] + [1.0] * rest, bias=0.3)  # type: ignore[index]
    rules = VoteRules.from_json(raw)
    values = features(set())
    first = VOTES[0].measurements[0]
    values[first] = 1.25  # z = 0.5
    vote = rules.decide(values).votes[0]
    assert vote.probability == pytest.approx(logistic(0.3 + 2.0 * 0.5))
    values[first] = 1e6  # far outside anything seen: the z-score is clipped
    assert rules.decide(values).votes[0].probability == pytest.approx(logistic(0.3 + 2.0 * Z_CLIP))


def test_decision_is_the_majority_and_platt_on_the_mean_logit_held_to_it() -> None:
    logits = np.array(
        [
            [2.0, 1.0, 1.0, -3.0, -3.0],  # majority AI, mean logit -0.4: held at 0.5
            [-2.0, -1.0, -1.0, 3.0, 3.0],  # majority human, mean logit 0.4: held at 0.5
            [-2.0, -1.0, -1.0, -3.0, 3.0],  # majority human, mean logit -0.8
            [1.0, 1.0, 1.0, 1.0, 1.0],
        ]
    )
    ai_probability, predicted_ai = decision((1.0, 0.0), logits)
    assert predicted_ai.tolist() == [True, False, False, True]
    assert ai_probability.tolist() == pytest.approx([0.5, 0.5, logistic(-0.8), logistic(1.0)])
    ai_probability, _ = decision((2.0, 1.0), logits[3:])
    assert ai_probability[0] == pytest.approx(logistic(3.0))


def test_sigmoid_saturates_without_overflow() -> None:
    assert sigmoid(np.array([-800.0, 0.0, 800.0])).tolist() == [0.0, 0.5, 1.0]
    assert sigmoid(np.array([-2.0, 3.0])) == pytest.approx([logistic(-2.0), logistic(3.0)])


def test_predict_gives_decides_figures_for_every_clip() -> None:
    rules = VoteRules.from_json(rules_json(slope=3.0, intercept=-1.0))
    rng = np.random.default_rng(0)
    values = rng.normal(scale=2.0, size=(200, len(MEASUREMENTS)))
    ai_probability, predicted_ai = rules.predict(values)
    for row, p, is_ai in zip(values, ai_probability, predicted_ai, strict=True):
        verdict = rules.decide(dict(zip(MEASUREMENTS, row.tolist(), strict=True)))
        assert verdict.classification == (AI if is_ai else HUMAN)
        assert verdict.ai_probability == p
    assert 0 < predicted_ai.sum() < len(values)


def test_explanation_names_the_deciding_votes_with_probability_and_leading_measurement() -> None:
    rules = VoteRules.from_json(rules_json())
    names = {"zero_crossing_rate", "temporal_variation", "audio_energy", "audio_variance"}
    values = features(names)
    values["jitter"] = 3.0  # the strongest AI vote, led by jitter
    verdict = rules.decide(values)
    text = verdict.explanation()
    p = logistic(6.0)
    assert text.startswith(
        f"4 of 5 signals point to AI-generated speech, led by temporal variation (P(AI) {p:.2f}"
    )
    assert "mostly jitter" in text
    assert text.endswith("wav2vec2 hidden-state variance disagreed.")
    assert [v.leading for v in verdict.votes] == [spec.measurements[0] for spec in VOTES]


def test_votes_serialise_with_probability_and_leading_measurement() -> None:
    verdict = VoteRules.from_json(rules_json()).decide(features({"audio_energy"}))
    first = verdict.votes[0].as_dict()
    assert first == {
        "name": "audio_energy",
        "probability": round(logistic(2.0), 4),
        "supports": AI,
        "leading": VOTES[0].measurements[0],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["votes"].pop(), "exactly"),
        (lambda raw: raw["votes"].reverse(), "in that order"),
        (lambda raw: raw["votes"][0]["measurements"].pop(), "measurements"),
        (lambda raw: raw["votes"][1]["weights"].pop(), "one value per measurement"),
        (lambda raw: raw["votes"][2].update(quadratic=[0.0]), "one value per measurement"),
        (lambda raw: raw["votes"][2].update(quadratic=[0.0] * 5 + [0.5]), "no longer supported"),
        (lambda raw: raw["votes"][0]["scale"].__setitem__(0, 0.0), "scale"),
        (lambda raw: raw["votes"][0].update(bias=float("nan")), "finite"),
        (lambda raw: raw["combine"].update(slope=-1.0), "slope"),
        (lambda raw: raw.pop("combine"), "not a usable"),
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
    rules = VoteRules.from_json(rules_json(slope=1.5, intercept=0.2))
    rules.save(tmp_path / "votes.json")
    assert VoteRules.load(tmp_path / "votes.json") == rules


def test_votes_files_with_all_zero_squared_terms_still_load_and_are_written_without_them(
    tmp_path: Path,
) -> None:
    """votes.json written while VoteModel had squared terms (always fitted as 0) loads unchanged."""
    raw = rules_json()
    for vote in raw["votes"]:  # type: ignore[attr-defined]
        vote["quadratic"] = [0.0] * len(vote["measurements"])
    path = tmp_path / "votes.json"
    path.write_text(json.dumps(raw))
    rules = VoteRules.load(path)
    assert rules == VoteRules.from_json(rules_json())
    assert all("quadratic" not in vote for vote in rules.to_json()["votes"])
