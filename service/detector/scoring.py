"""How well verdicts score against labels: accuracy, ROC, EER, calibration (numpy only, so that
``voicecheck scan --labels`` needs nothing the service does not have)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.labels import AI, HUMAN

TIERS = ((0.8, 1.0), (0.6, 0.75), (0.4, 0.5), (0.0, 0.25))


def report(
    is_ai: np.ndarray, ai_probability: np.ndarray, predicted_ai: np.ndarray, groups: Sequence[str]
) -> dict[str, Any]:
    """Everything calibrate and evaluate publish, from out-of-sample predictions."""
    correct = predicted_ai == is_ai
    confidence = np.where(predicted_ai, ai_probability, 1.0 - ai_probability)
    return {
        "clips": len(is_ai),
        "accuracy": float(correct.mean()),
        "balanced_accuracy": balanced_accuracy(is_ai, predicted_ai),
        "roc_auc": roc_auc(is_ai, ai_probability),
        "eer": equal_error_rate(is_ai, ai_probability),
        "ece": expected_calibration_error(correct, confidence),
        "tiered_score": tiered_score(correct, confidence),
        "confusion": confusion(is_ai, predicted_ai),
        "per_group_accuracy": per_group_accuracy(correct, groups),
        "reliability": reliability(correct, confidence),
    }


def balanced_accuracy(is_ai: np.ndarray, predicted_ai: np.ndarray) -> float:
    recalls = [np.mean(predicted_ai[is_ai == c] == c) for c in (True, False) if np.any(is_ai == c)]
    return float(np.mean(recalls))


def roc_auc(is_ai: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random AI clip scores above a random human clip (ties count half)."""
    if is_ai.all() or not is_ai.any():
        return float("nan")
    fpr, tpr = roc_curve(is_ai, score)
    return float(np.trapezoid(tpr, fpr))


def roc_curve(is_ai: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score taken as the threshold, from the
    highest down, after a first point at (0, 0)."""
    order = np.argsort(-np.asarray(score), kind="stable")
    ranked, hits = np.asarray(score)[order], np.asarray(is_ai, dtype=bool)[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    true_positives = np.cumsum(hits)[last_of_each]
    false_positives = last_of_each + 1 - true_positives
    tpr = np.r_[0.0, true_positives / max(true_positives[-1], 1)]
    fpr = np.r_[0.0, false_positives / max(false_positives[-1], 1)]
    return fpr, tpr


def equal_error_rate(is_ai: np.ndarray, score: np.ndarray) -> float:
    """Where false-accept and false-reject rates cross, interpolated between ROC points."""
    fpr, tpr = roc_curve(is_ai, score)
    fnr = 1.0 - tpr
    gap = fnr - fpr
    crossing = int(np.argmax(gap <= 0))
    if crossing == 0:
        return float(fpr[0])
    g0, g1 = gap[crossing - 1], gap[crossing]
    w = g0 / (g0 - g1) if g0 != g1 else 0.0
    return float(fpr[crossing - 1] + w * (fpr[crossing] - fpr[crossing - 1]))


def reliability(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean confidence and accuracy per confidence bin (the reliability diagram)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return [
        {
            "confidence": float(confidence[index == b].mean()),
            "accuracy": float(correct[index == b].mean()),
            "count": int((index == b).sum()),
        }
        for b in range(bins)
        if (index == b).any()
    ]


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> float:
    total = len(correct)
    return float(
        sum(
            b["count"] / total * abs(b["accuracy"] - b["confidence"])
            for b in reliability(correct, confidence, bins)
        )
    )


def tiered_score(correct: np.ndarray, confidence: np.ndarray) -> float:
    """The hackathon's score: right answers earn 1/0.75/0.5/0.25 by confidence, wrong ones 0."""
    points = [next(p for floor, p in TIERS if c >= floor) for c in confidence]
    return float(np.mean(np.where(correct, points, 0.0)))


def confusion(is_ai: np.ndarray, predicted_ai: np.ndarray) -> dict[str, dict[str, int]]:
    names = {True: AI, False: HUMAN}
    return {
        names[truth]: {
            names[guess]: int(np.sum((is_ai == truth) & (predicted_ai == guess))) for guess in (True, False)
        }
        for truth in (True, False)
    }


def per_group_accuracy(correct: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    labels = np.asarray(groups)
    return {g: float(correct[labels == g].mean()) for g in sorted(set(groups))}
