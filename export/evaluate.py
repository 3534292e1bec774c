"""Evaluate the served graph and votes on a labelled corpus: accuracy, EER, AUC, calibration, score.

Reads DATA_DIR/labels.csv, classifies every clip exactly as the service does (same features,
same votes.json), and writes a JSON report (and ROC / reliability PNGs when matplotlib is
installed). The report also holds, refitted on the corpus with export.calibrate's recipe:
leave-one-group-out cross-validation (every speaker, voice and vocoder held out in turn) and the
generator-transfer matrix (votes trained without a generator family, or on one family only,
tested on the families they never saw and on human speakers they never saw).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.calibrate import (
    FOLD,
    INNER_FOLDS,
    add_budget_argument,
    corpus_parser,
    cross_validate,
    fit_votes,
    group_folds,
)
from export.corpus import FeatureTable, compute_features
from export.robustness import PERTURBATIONS, Perturbation
from service.detector import AnalysisOptions, Detector
from service.detector.artifacts import ArtifactsError
from service.detector.audio import quiet_decoder_notes
from service.detector.scoring import report, roc_curve
from service.detector.votes import Verdict, VoteRules
from service.labels import AI, read_labels


def verdicts(table: FeatureTable, rules: VoteRules) -> list[Verdict]:
    return [rules.decide(table.row(i)) for i in range(len(table.clips))]


def evaluate(table: FeatureTable, decided: list[Verdict], rules: VoteRules) -> dict[str, Any]:
    ai_probability = np.array([v.ai_probability for v in decided])
    predicted_ai = np.array([v.classification == AI for v in decided])
    return report(table.is_ai, ai_probability, predicted_ai, table.groups) | {
        "votes_calibrated": rules.calibrated
    }


def _recalls(table: FeatureTable, train_families: set[str]) -> dict[str, float]:
    """Votes trained on the humans of all but one group fold plus ``train_families``; tested on the
    held-out humans ("human") and on every AI family left out of training (its AI recall)."""
    families = np.asarray(table.families)
    is_ai = table.is_ai
    fold = group_folds(table.groups, is_ai, INNER_FOLDS, seed=1)
    hits: dict[str, list[float]] = {}
    for k in range(INNER_FOLDS):
        held = ~is_ai & (fold == k)
        train = (~is_ai & ~held) | (is_ai & np.isin(families, sorted(train_families)))
        if not held.any() or not (is_ai & train).any():
            continue
        groups = [g for g, t in zip(table.groups, train, strict=True) if t]
        rules = fit_votes(table.values[train], is_ai[train], groups, FOLD, True)
        test = held | (is_ai & ~train)
        _, predicted_ai = rules.predict(table.values[test])
        for family in sorted(set(families[test])):
            chosen = families[test] == family
            key = "human" if family == "human" or not is_ai[test][chosen][0] else family
            hits.setdefault(key, []).append(float(np.mean(predicted_ai[chosen] == is_ai[test][chosen])))
    return {family: float(np.mean(values)) for family, values in sorted(hits.items())}


def family_out(table: FeatureTable, exclude: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per trainable AI family: its recall (and unseen people's accuracy) when the votes are trained
    as calibration trains them (excluded families left out) but without that family."""
    ai_families = {f for f, a in zip(table.families, table.is_ai, strict=True) if a} - set(exclude)
    return {f: _recalls(table, ai_families - {f}) for f in sorted(ai_families)}


def transfer_matrix(table: FeatureTable) -> dict[str, Any]:
    """Per AI family: accuracy on it (and on unseen humans) when trained without it, or on one family
    only; and, for each pair, how much adding family G to training helps on unseen family F."""
    ai_families = sorted({f for f, a in zip(table.families, table.is_ai, strict=True) if a})
    everything = set(ai_families)
    without = {f: _recalls(table, everything - {f}) for f in ai_families}
    only = {g: _recalls(table, {g}) for g in ai_families}
    helps: dict[str, dict[str, float]] = {}
    for f in ai_families:
        for g in ai_families:
            if g != f and len(everything - {f, g}) > 0:
                reduced = _recalls(table, everything - {f, g})
                helps.setdefault(g, {})[f] = round(without[f][f] - reduced[f], 4)
                helps[g][f"human (without {f})"] = round(without[f]["human"] - reduced["human"], 4)
    return {
        "families": ai_families,
        "trained_without_family": without,
        "trained_on_one_family": only,
        "adding_family_helps_unseen": helps,
    }


def robustness(
    table: FeatureTable,
    decided: list[Verdict],
    detector: Detector,
    count: int,
) -> dict[str, Any]:
    """Share of verdicts that change under each perturbation, on ``count`` clips spread over the corpus."""
    chosen = list(range(0, len(table.clips), max(1, len(table.clips) // count)))[:count]
    baseline = np.array([decided[i].classification for i in chosen])
    clips = [table.clips[i] for i in chosen]
    flips = {}
    for name, perturb in PERTURBATIONS.items():
        changed = compute_features(
            clips, detector.encoder, detector.options.window_seconds, _as_file(perturb)
        )
        flips[name] = float(
            np.mean(np.array([v.classification for v in verdicts(changed, detector.rules)]) != baseline)
        )
    return {"clips": len(chosen), "verdict_flip_rate": flips}


def _as_file(perturb: Perturbation) -> Callable[[np.ndarray], np.ndarray]:
    """The perturbation with a fixed noise seed, clipped to full scale as a 16-bit file would be."""
    rng = np.random.default_rng(0)
    return lambda waveform: np.clip(perturb(waveform, rng), -1.0, 1.0)


def plot(table: FeatureTable, decided: list[Verdict], result: dict[str, Any], out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fpr, tpr = roc_curve(table.is_ai, np.array([v.ai_probability for v in decided]))
    figure, (roc_axes, rel_axes) = plt.subplots(1, 2, figsize=(10, 4.5))
    roc_axes.plot(fpr, tpr, marker="o")
    roc_axes.plot([0, 1], [0, 1], linestyle=":")
    roc_axes.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"ROC (AUC {result['roc_auc']:.3f}, EER {result['eer']:.3f})",
    )
    bins = result["reliability"]
    rel_axes.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o")
    rel_axes.plot([0.5, 1], [0.5, 1], linestyle=":")
    rel_axes.set(xlabel="confidence", ylabel="accuracy", title=f"Reliability (ECE {result['ece']:.3f})")
    path = out_dir / "evaluation.png"
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return [path]


def main(argv: Sequence[str] | None = None) -> int:
    parser = corpus_parser("python -m export.evaluate", __doc__)
    parser.add_argument(
        "--report", type=Path, default=None, help="JSON report path (default: ARTIFACTS/evaluation.json)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="reuse/write the measurements here (.npz)")
    parser.add_argument(
        "--no-cross-validation",
        action="store_true",
        help="skip leave-one-group-out and the generator-transfer matrix (refits on the corpus)",
    )
    parser.add_argument(
        "--robustness",
        type=int,
        default=0,
        metavar="N",
        help="also re-run N clips at -20 dB, +6 dB, with 20 dB SNR noise and as 32 kbit/s MP3",
    )
    add_budget_argument(parser)
    args = parser.parse_args(argv)
    quiet_decoder_notes()
    try:
        detector = Detector.load(args.artifacts, args.threads, AnalysisOptions(args.window_seconds))
    except (ArtifactsError, ValueError) as exc:  # votes of another graph, a window out of range
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    table = compute_features(
        read_labels(args.data_dir),
        detector.encoder,
        detector.options.window_seconds,
        cache=args.cache,
        max_encoded_seconds=args.max_encoded_seconds,
    )
    decided = verdicts(table, detector.rules)
    result = evaluate(table, decided, detector.rules)
    if not args.no_cross_validation:
        result["leave_one_group_out"] = cross_validate(table, args.exclude_families)
        result["family_out"] = family_out(table, args.exclude_families)
        result["generator_transfer"] = transfer_matrix(table)
    if args.robustness:
        result["robustness"] = robustness(table, decided, detector, args.robustness)
    report_path = args.report or args.artifacts / "evaluation.json"
    report_path.write_text(json.dumps({"data_dir": str(args.data_dir), **result}, indent=2) + "\n")
    plots = plot(table, decided, result, report_path.parent)
    if "leave_one_group_out" in result:
        cv = result["leave_one_group_out"]
        print(
            f"leave-one-group-out: balanced accuracy {cv['balanced_accuracy']:.3f}, EER {cv['eer']:.3f}, "
            f"AUC {cv['roc_auc']:.3f}, ECE {cv['ece']:.3f} (trainable families only: "
            f"{cv['trainable_families_only']['balanced_accuracy']:.3f}, EER "
            f"{cv['trainable_families_only']['eer']:.3f}), worst group {cv['worst_group']['group']} "
            f"{cv['worst_group']['accuracy']:.3f}",
            file=sys.stderr,
        )
    if "family_out" in result:
        print(
            "family-out recall (trained without the family): "
            + ", ".join(f"{f} {r[f]:.2f} (people {r['human']:.2f})" for f, r in result["family_out"].items()),
            file=sys.stderr,
        )
    print(
        "served votes, in-sample: "
        f"balanced accuracy {result['balanced_accuracy']:.3f}, EER {result['eer']:.3f}, AUC "
        f"{result['roc_auc']:.3f}, ECE {result['ece']:.3f}, tiered score {result['tiered_score']:.3f}; "
        f"wrote {report_path}" + "".join(f", {p}" for p in plots),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
