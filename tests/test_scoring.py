"""Scores computed with numpy alone agree with scikit-learn's, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from service.detector.scoring import equal_error_rate, roc_auc, roc_curve


@pytest.mark.parametrize("seed", range(5))
def test_roc_and_auc_equal_scikit_learns_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    is_ai = rng.random(200) < 0.3
    score = np.round(rng.random(200) * 0.7 + 0.3 * is_ai, 1)  # coarse: many tied scores
    fpr, tpr = roc_curve(is_ai, score)
    expected_fpr, expected_tpr, _ = metrics.roc_curve(is_ai, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)
    assert roc_auc(is_ai, score) == pytest.approx(metrics.roc_auc_score(is_ai, score))


def test_equal_error_rate_where_false_accepts_meet_false_rejects() -> None:
    is_ai = np.array([True] * 4 + [False] * 4)
    score = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.2, 0.1])  # one of each side crosses over
    assert equal_error_rate(is_ai, score) == pytest.approx(0.25)
    assert np.isnan(roc_auc(np.ones(3, bool), np.arange(3.0)))
