"""Learn the five votes' thresholds and confidence mapping from labelled speech; write votes.json.

Reads DATA_DIR/labels.csv (path,label,group,language), computes the features with the service's
own code and the graph in --artifacts, cross-validates with whole groups (voices, speakers) held
out where the corpus has enough of them, and writes --artifacts/votes.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from export.corpus import FeatureTable, compute_features, read_labels
from export.manifest import sha256_of
from export.metrics import report
from service.audio import quiet_decoder_notes
from service.features import FEATURE_NAMES
from service.model import Encoder, create_session
from service.settings import DEFAULT_WINDOW_SECONDS
from service.verdict import AI, VoteRule, VoteRules

FOLDS = 5
MAX_CANDIDATES = 512


def fit_rule(feature: str, values: np.ndarray, is_ai: np.ndarray) -> VoteRule:
    """The threshold and side that maximise balanced accuracy on these values."""
    candidates = np.unique(np.quantile(values, np.linspace(0, 1, MAX_CANDIDATES)))
    cuts = (candidates[:-1] + candidates[1:]) / 2 if len(candidates) > 1 else candidates
    above = values[None, :] > cuts[:, None]
    ai_rate = above[:, is_ai].mean(axis=1) if is_ai.any() else np.zeros(len(cuts))
    human_rate = above[:, ~is_ai].mean(axis=1) if (~is_ai).any() else np.zeros(len(cuts))
    score_above = 0.5 * (ai_rate + 1.0 - human_rate)
    best = int(np.argmax(np.abs(score_above - 0.5)))
    spread = float(np.subtract(*np.percentile(values, [75, 25])))
    return VoteRule(
        feature=feature,
        threshold=float(cuts[best]),
        ai_when="above" if score_above[best] >= 0.5 else "below",
        scale=spread if spread > 0 else float(np.std(values)) or 1.0,
    )


def fit_probability(ai_votes: np.ndarray, is_ai: np.ndarray, n_votes: int) -> tuple[float, ...]:
    """P(AI | number of AI votes): Laplace-smoothed frequencies made monotone (pool adjacent
    violators), then held on the majority's side of 0.5 so the confidence never contradicts
    the majority (where data disagree with the majority, the confidence is 0.5: a coin flip)."""
    counts = np.array([np.sum(ai_votes == k) for k in range(n_votes + 1)], dtype=float)
    hits = np.array([np.sum(is_ai[ai_votes == k]) for k in range(n_votes + 1)], dtype=float)
    monotone = _increasing((hits + 1) / (counts + 2), counts + 2)
    majority_ai = 2 * np.arange(n_votes + 1) > n_votes
    return tuple(
        float(p) for p in np.where(majority_ai, np.maximum(monotone, 0.5), np.minimum(monotone, 0.5))
    )


def _increasing(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    blocks = [[float(v), float(w), 1] for v, w in zip(values, weights, strict=True)]
    merged: list[list[float]] = []
    for block in blocks:
        merged.append(block)
        while len(merged) > 1 and merged[-2][0] > merged[-1][0]:
            right, left = merged.pop(), merged.pop()
            weight = left[1] + right[1]
            merged.append([(left[0] * left[1] + right[0] * right[1]) / weight, weight, left[2] + right[2]])
    return np.concatenate([np.full(int(n), v) for v, _, n in merged])


def fit_votes(
    values: np.ndarray, is_ai: np.ndarray, provenance: dict[str, Any], calibrated: bool
) -> VoteRules:
    rules = tuple(fit_rule(name, values[:, i], is_ai) for i, name in enumerate(FEATURE_NAMES))
    partial = VoteRules(rules, (0.5,) * (len(rules) + 1), calibrated)
    ai_votes = count_ai_votes(partial, values)
    return VoteRules(rules, fit_probability(ai_votes, is_ai, len(rules)), calibrated, provenance)


def count_ai_votes(rules: VoteRules, values: np.ndarray) -> np.ndarray:
    """AI votes per row, cast by the service's own rule (VoteRules.decide)."""
    rows = (dict(zip(FEATURE_NAMES, row.tolist(), strict=True)) for row in values)
    return np.array([sum(vote.supports == AI for vote in rules.decide(row).votes) for row in rows])


def assign_folds(groups: Sequence[str], is_ai: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Whole groups per fold for a class with at least ``folds`` groups; clip by clip otherwise."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(groups)
    fold = np.zeros(len(labels), dtype=int)
    for cls in (True, False):
        members = np.flatnonzero(is_ai == cls)
        names = sorted(set(labels[members]))
        if len(names) >= folds:
            order = rng.permutation(len(names))
            for rank, name_index in enumerate(order):
                fold[members[labels[members] == names[name_index]]] = rank % folds
        else:
            fold[members] = rng.permutation(len(members)) % folds
    return fold


def cross_validate(table: FeatureTable, folds: int = FOLDS) -> dict[str, Any]:
    """Out-of-fold predictions for every clip whose fold leaves both classes to learn from."""
    is_ai = table.is_ai
    fold = assign_folds(table.groups, is_ai, folds)
    ai_probability = np.zeros(len(is_ai))
    predicted_ai = np.zeros(len(is_ai), dtype=bool)
    scored = np.zeros(len(is_ai), dtype=bool)
    for k in range(folds):
        test = fold == k
        if not test.any() or len(set(is_ai[~test])) < 2:
            continue
        rules = fit_votes(table.values[~test], is_ai[~test], {}, calibrated=True)
        for index in np.flatnonzero(test):
            verdict = rules.decide(table.row(int(index)))
            ai_probability[index] = verdict.ai_probability
            predicted_ai[index] = verdict.classification == AI
        scored |= test
    groups = [g for g, keep in zip(table.groups, scored, strict=True) if keep]
    return report(is_ai[scored], ai_probability[scored], predicted_ai[scored], groups)


def corpus_summary(table: FeatureTable) -> dict[str, Any]:
    groups: dict[str, int] = {}
    for clip in table.clips:
        groups[f"{clip.label}:{clip.group}"] = groups.get(f"{clip.label}:{clip.group}", 0) + 1
    return {"clips": len(table.clips), "groups": groups}


def calibrate(
    data_dir: Path, artifacts: Path, threads: int, window_seconds: float, max_encoded_seconds: float
) -> VoteRules:
    encoder = Encoder(create_session(artifacts / "model.onnx", threads))
    clips = read_labels(data_dir)
    table = compute_features(clips, encoder, window_seconds, max_encoded_seconds=max_encoded_seconds)
    metrics = cross_validate(table)
    provenance = {
        "source": "calibrate",
        "corpus": {"dir": str(data_dir), **corpus_summary(table)},
        "graph_sha256": sha256_of(artifacts / "model.onnx"),
        "window_seconds": window_seconds,
        "max_encoded_seconds": max_encoded_seconds if math.isfinite(max_encoded_seconds) else None,
        "cross_validated": metrics,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return fit_votes(table.values, table.is_ai, provenance, calibrated=True)


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-encoded-seconds",
        type=float,
        default=math.inf,
        metavar="S",
        help="analyse each clip as the service does when its deadline affords wav2vec2 only S seconds "
        "of it (windows spread over the clip); default: every window",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.calibrate", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="folder with labels.csv and the audio it lists")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="folder with model.onnx")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window-seconds", type=float, default=DEFAULT_WINDOW_SECONDS)
    add_budget_argument(parser)
    args = parser.parse_args(argv)
    quiet_decoder_notes()
    rules = calibrate(
        args.data_dir, args.artifacts, args.threads, args.window_seconds, args.max_encoded_seconds
    )
    rules.save(args.artifacts / "votes.json")
    cv = rules.provenance["cross_validated"]
    print(
        f"wrote {args.artifacts / 'votes.json'}: cross-validated balanced accuracy "
        f"{cv['balanced_accuracy']:.3f}, EER {cv['eer']:.3f}, ECE {cv['ece']:.3f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
