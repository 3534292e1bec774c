"""Vote calibration: learn the five votes from a labelled folder (labels.csv) and write votes.json.

Reads DATA_DIR/labels.csv (path,label,group,language[,family]), computes the measurements with
the service's own code and the graph in --artifacts, and fits, for each vote of service.detector.measurements,
a logistic regression (scikit-learn) with a strong L2 penalty on its standardised measurements.
Clips are weighted so that every group (speaker, voice, vocoder) counts the same within its class
and the two classes count the same: a thousand prompts by one speaker do not outvote five by
another. Optionally (SPECIFICITY), each vote's operating point is then set by people: its
threshold moves to where every human group, scored by votes fitted without it (whole groups held
out), keeps that share of its clips on the human side (not the default: docs/votes.md). The confidence is
a Platt mapping of the mean vote logit, fitted on the same out-of-fold logits, so it is
calibrated for voices the votes have not seen. The published cross-validated figures hold every
group out in turn (leave-one-group-out).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold

from export.corpus import FeatureTable, compute_features
from service.detector.artifacts import Artifacts, sha256_of
from service.detector.audio import quiet_decoder_notes
from service.detector.encoder import Encoder
from service.detector.measurements import MEASUREMENTS, VOTES
from service.detector.scoring import report
from service.detector.votes import VoteModel, VoteProvenance, VoteRules, standardise, vote_logits
from service.detector.windows import DEFAULT_WINDOW_SECONDS
from service.labels import read_labels

L2 = 0.05  # penalty on the standardised weights, per unit of total sample weight
# Resynthesised people: kept in the corpus, never learnt from: learning them barely moved unseen
# engines and cost the other groups accuracy (docs/votes.md#why-the-recipe-is-what-it-is).
EXCLUDED_FAMILIES = ("world", "griffinlim", "lpc")
INNER_FOLDS = 5
# Share of each held-out human group a vote must keep on the human side (its operating point); None:
# each vote's own balanced threshold. Per-vote people-set thresholds (0.3-0.85) lost recall on
# every held-out family for little gain in people (docs/votes.md#why-the-recipe-is-what-it-is).
SPECIFICITY: float | None = None

FOLD = VoteProvenance(graph_sha256="", source="cross-validation fold")  # fitted, scored, never saved


def sample_weights(is_ai: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Every group the same total weight within its class; both classes the same; sum 1."""
    labels = np.asarray(groups)
    weights = np.zeros(len(labels))
    for cls in (True, False):
        members = is_ai == cls
        names = sorted(set(labels[members]))
        for name in names:
            chosen = members & (labels == name)
            weights[chosen] = 1.0 / (len(names) * chosen.sum())
    return np.asarray(weights / weights.sum())


def fit_logistic(z: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weighted logistic regression minimising sum(w * log-loss) + l2/2 |weights|^2 (scikit-learn;
    the intercept is not penalised)."""
    model = LogisticRegression(C=1.0 / l2, solver="newton-cholesky", max_iter=100, tol=1e-8)
    model.fit(z, y, sample_weight=w)
    return np.asarray(model.coef_[0]), float(model.intercept_[0])


def _standardise(values: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = w @ values / w.sum()
    scale = np.sqrt(w @ (values - mean) ** 2 / w.sum())
    return mean, np.where(scale > 1e-9, scale, 1.0)


def fit_models(values: np.ndarray, is_ai: np.ndarray, w: np.ndarray, l2: float) -> tuple[VoteModel, ...]:
    models = []
    for spec in VOTES:
        columns = values[:, [MEASUREMENTS.index(m) for m in spec.measurements]]
        mean, scale = _standardise(columns, w)
        weights, bias = fit_logistic(standardise(columns, mean, scale), is_ai.astype(float), w, l2)
        models.append(
            VoteModel(
                spec.name,
                spec.measurements,
                tuple(mean.tolist()),
                tuple(scale.tolist()),
                tuple(weights.tolist()),
                bias,
            )
        )
    return tuple(models)


def fit_combine(mean_logit: np.ndarray, is_ai: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    slope, intercept = fit_logistic(mean_logit[:, None], is_ai.astype(float), w, 1e-4)
    return max(0.0, float(slope[0])), intercept


def group_folds(groups: Sequence[str], is_ai: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per clip: whole groups per fold, both classes spread over the folds
    (scikit-learn's StratifiedGroupKFold, seeded; fewer folds when a class has fewer groups)."""
    labels = np.asarray(groups)
    count = min(folds, *(len(set(labels[is_ai == c])) for c in (True, False) if (is_ai == c).any()))
    fold = np.zeros(len(labels), dtype=int)
    if count < 2:
        return fold
    splitter = StratifiedGroupKFold(n_splits=count, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), is_ai, labels)):
        fold[test] = k
    return fold


def people_thresholds(
    logits: np.ndarray, is_ai: np.ndarray, groups: Sequence[str], specificity: float
) -> np.ndarray:
    """Per vote (column), the logit threshold under which every human group keeps ``specificity``
    of its clips: the highest of the groups' ``specificity`` quantiles."""
    labels = np.asarray(groups)
    humans = sorted(set(labels[~is_ai]))
    if not humans:
        return np.zeros(logits.shape[1])
    quantiles = [np.quantile(logits[labels == g], specificity, axis=0) for g in humans]
    return np.asarray(np.max(quantiles, axis=0))


def out_of_fold_logits(
    values: np.ndarray, is_ai: np.ndarray, groups: Sequence[str], models: Sequence[VoteModel], l2: float
) -> np.ndarray:
    """clips x votes: each clip's vote logits from votes fitted without its group's fold (``models``,
    fitted on everything, where a fold leaves a class out)."""
    fold = group_folds(groups, is_ai, INNER_FOLDS)
    out = vote_logits(models, values)
    for k in sorted(set(fold)):
        test = fold == k
        if test.all() or len(set(is_ai[~test])) < 2:
            continue
        train_w = sample_weights(is_ai[~test], [g for g, t in zip(groups, test, strict=True) if not t])
        out[test] = vote_logits(fit_models(values[~test], is_ai[~test], train_w, l2), values[test])
    return out


def fit_votes(
    values: np.ndarray,
    is_ai: np.ndarray,
    groups: Sequence[str],
    provenance: VoteProvenance,
    calibrated: bool,
    l2: float = L2,
    specificity: float | None = SPECIFICITY,
) -> VoteRules:
    """The votes (each with its operating point set by the held-out people when ``specificity`` is
    given) and the Platt mapping."""
    w = sample_weights(is_ai, groups)
    models = fit_models(values, is_ai, w, l2)
    held_out = out_of_fold_logits(values, is_ai, groups, models, l2)
    thresholds = (
        np.zeros(len(models))
        if specificity is None
        else people_thresholds(held_out, is_ai, groups, specificity)
    )
    models = tuple(replace(m, bias=m.bias - float(t)) for m, t in zip(models, thresholds, strict=True))
    combine = fit_combine((held_out - thresholds).mean(axis=1), is_ai, w)
    return VoteRules(models, combine, calibrated, provenance)


def trainable(table: FeatureTable, exclude: Sequence[str]) -> np.ndarray:
    """Clips the votes may learn from: all but the excluded generator families."""
    return ~np.isin(np.asarray(table.families), list(exclude))


def leave_one_group_out(
    table: FeatureTable, exclude: Sequence[str] = (), l2: float = L2
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-group P(AI) and predictions: every group is scored by votes that never saw it
    (groups of excluded families are never learnt from, so they are scored as unseen)."""
    groups = np.asarray(table.groups)
    is_ai = table.is_ai
    usable = trainable(table, exclude)
    ai_probability = np.zeros(len(groups))
    predicted_ai = np.zeros(len(groups), dtype=bool)
    for train_index, test_index in LeaveOneGroupOut().split(table.values, is_ai, groups):
        test = np.isin(np.arange(len(groups)), test_index)
        train = usable & np.isin(np.arange(len(groups)), train_index)
        rules = fit_votes(table.values[train], is_ai[train], list(groups[train]), FOLD, True, l2)
        ai_probability[test], predicted_ai[test] = rules.predict(table.values[test])
    return ai_probability, predicted_ai


def cross_validate(table: FeatureTable, exclude: Sequence[str] = (), l2: float = L2) -> dict[str, Any]:
    ai_probability, predicted_ai = leave_one_group_out(table, exclude, l2)
    result = report(table.is_ai, ai_probability, predicted_ai, table.groups)
    per_group = result["per_group_accuracy"]
    worst = min(per_group, key=per_group.__getitem__)
    usable = trainable(table, exclude)
    groups = [g for g, u in zip(table.groups, usable, strict=True) if u]
    trained = report(table.is_ai[usable], ai_probability[usable], predicted_ai[usable], groups)
    return {
        "scheme": "leave-one-group-out",
        "excluded_families": list(exclude),
        **result,
        "worst_group": {"group": worst, "accuracy": per_group[worst]},
        "trainable_families_only": {
            k: trained[k] for k in ("clips", "balanced_accuracy", "eer", "roc_auc", "ece", "tiered_score")
        },
    }


def corpus_summary(table: FeatureTable) -> dict[str, Any]:
    groups: dict[str, int] = {}
    for clip in table.clips:
        groups[f"{clip.label}:{clip.group}"] = groups.get(f"{clip.label}:{clip.group}", 0) + 1
    return {"clips": len(table.clips), "groups": groups}


def calibrate(
    data_dir: Path,
    artifacts: Artifacts,
    threads: int,
    window_seconds: float,
    cache: Path | None = None,
    exclude: Sequence[str] = EXCLUDED_FAMILIES,
    max_encoded_seconds: float = math.inf,
) -> VoteRules:
    encoder = Encoder.load(artifacts.graph, threads)
    clips = read_labels(data_dir)
    table = compute_features(
        clips, encoder, window_seconds, cache=cache, max_encoded_seconds=max_encoded_seconds
    )
    metrics = cross_validate(table, exclude)
    usable = trainable(table, exclude)
    provenance = VoteProvenance(
        graph_sha256=sha256_of(artifacts.graph),
        source="calibrate",
        layers=artifacts.manifest().source.layers,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model=f"per vote: L2 logistic regression (l2={L2}) on standardised measurements, group-balanced"
        + (f"; threshold where every held-out human group keeps {SPECIFICITY:.0%}" if SPECIFICITY else ""),
        corpus={"dir": str(data_dir), **corpus_summary(table)},
        window_seconds=window_seconds,
        max_encoded_seconds=max_encoded_seconds if math.isfinite(max_encoded_seconds) else None,
        excluded_families=list(exclude),
        cross_validated=metrics,
    )
    groups = [g for g, u in zip(table.groups, usable, strict=True) if u]
    return fit_votes(table.values[usable], table.is_ai[usable], groups, provenance, calibrated=True)


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-encoded-seconds",
        type=float,
        default=math.inf,
        metavar="S",
        help="analyse each clip as the service does when its deadline affords wav2vec2 only S seconds "
        "of it (windows spread over the clip); default: every window",
    )


def corpus_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The arguments of every command that measures a labelled corpus (calibrate, layerscan)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("data_dir", type=Path, help="folder with labels.csv and the audio it lists")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="folder with model.onnx")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window-seconds", type=float, default=DEFAULT_WINDOW_SECONDS)
    parser.add_argument(
        "--exclude-families",
        type=lambda names: tuple(name for name in names.split(",") if name),
        default=EXCLUDED_FAMILIES,
        help="generator families (labels.csv 'family') never learnt from; "
        f"default: {','.join(EXCLUDED_FAMILIES)}",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = corpus_parser("python -m export.calibrate", __doc__)
    parser.add_argument("--cache", type=Path, default=None, help="reuse/write the measurements here (.npz)")
    add_budget_argument(parser)
    args = parser.parse_args(argv)
    quiet_decoder_notes()
    exclude = args.exclude_families
    artifacts = Artifacts(args.artifacts)
    rules = calibrate(
        args.data_dir,
        artifacts,
        args.threads,
        args.window_seconds,
        args.cache,
        exclude,
        args.max_encoded_seconds,
    )
    rules.save(artifacts.votes_file)
    print(f"wrote {artifacts.votes_file}; {cross_validation_summary(rules, exclude)}", file=sys.stderr)
    return 0


def cross_validation_summary(rules: VoteRules, exclude: Sequence[str]) -> str:
    cv = rules.provenance.cross_validated or {}
    seen, worst = cv["trainable_families_only"], cv["worst_group"]
    return (
        f"leave-one-group-out: balanced accuracy {seen['balanced_accuracy']:.3f}, EER {seen['eer']:.3f}, "
        f"ECE {seen['ece']:.3f} on the trainable families; {cv['balanced_accuracy']:.3f} with the excluded "
        f"ones ({', '.join(exclude) or 'none'}) as unseen; "
        f"worst group {worst['group']} {worst['accuracy']:.3f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
