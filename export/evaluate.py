"""Evaluate the served graph and votes on a labelled corpus: accuracy, EER, AUC, calibration, score.

Reads DATA_DIR/labels.csv, classifies every clip exactly as the service does (same features,
same votes.json), and writes a JSON report (and ROC / reliability PNGs when matplotlib is
installed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.corpus import Clip, FeatureTable, compute_features, read_labels
from export.metrics import reliability, report, roc_curve
from export.robustness import PERTURBATIONS, Perturbation
from service.model import Encoder, create_session
from service.verdict import AI, VoteRules


def evaluate(table: FeatureTable, rules: VoteRules) -> dict[str, Any]:
    verdicts = [rules.decide(table.row(i)) for i in range(len(table.clips))]
    ai_probability = np.array([v.ai_probability for v in verdicts])
    predicted_ai = np.array([v.classification == AI for v in verdicts])
    result = report(table.is_ai, ai_probability, predicted_ai, table.groups)
    confidence = np.array([v.confidence for v in verdicts])
    result["reliability"] = reliability(predicted_ai == table.is_ai, confidence)
    result["votes_calibrated"] = rules.calibrated
    return result


def robustness(
    clips: list[Clip], encoder: Encoder, rules: VoteRules, window_seconds: float, count: int
) -> dict[str, Any]:
    """Share of verdicts that change under each perturbation, on ``count`` clips spread over the corpus."""
    chosen = clips[:: max(1, len(clips) // count)][:count]
    baseline = _verdicts(compute_features(chosen, encoder, window_seconds), rules)
    flips = {}
    for name, perturb in PERTURBATIONS.items():
        table = compute_features(chosen, encoder, window_seconds, _applied(perturb))
        flips[name] = float(np.mean(_verdicts(table, rules) != baseline))
    return {"clips": len(chosen), "verdict_flip_rate": flips}


def _applied(perturb: Perturbation) -> Callable[[np.ndarray], np.ndarray]:
    """The perturbation with a fixed noise seed, peak-limited to full scale as a file would be."""
    rng = np.random.default_rng(0)

    def apply(waveform: np.ndarray) -> np.ndarray:
        changed = perturb(waveform, rng)
        peak = float(np.max(np.abs(changed)))
        return changed / peak if peak > 1.0 else changed

    return apply


def _verdicts(table: FeatureTable, rules: VoteRules) -> np.ndarray:
    return np.array([rules.decide(table.row(i)).classification for i in range(len(table.clips))])


def plot(table: FeatureTable, rules: VoteRules, result: dict[str, Any], out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    scores = np.array([rules.decide(table.row(i)).ai_probability for i in range(len(table.clips))])
    fpr, tpr = roc_curve(table.is_ai, scores)
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
    parser = argparse.ArgumentParser(prog="python -m export.evaluate", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="folder with labels.csv and the audio it lists")
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="folder with model.onnx and votes.json"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="JSON report path (default: ARTIFACTS/evaluation.json)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window-seconds", type=float, default=10.0)
    parser.add_argument(
        "--robustness",
        type=int,
        default=0,
        metavar="N",
        help="also re-run N clips at -20 dB, +6 dB, with 20 dB SNR noise and as 32 kbit/s MP3",
    )
    args = parser.parse_args(argv)
    rules = VoteRules.load(args.artifacts / "votes.json")
    encoder = Encoder(create_session(args.artifacts / "model.onnx", args.threads))
    clips = read_labels(args.data_dir)
    table = compute_features(clips, encoder, args.window_seconds)
    result = evaluate(table, rules)
    if args.robustness:
        result["robustness"] = robustness(clips, encoder, rules, args.window_seconds, args.robustness)
    report_path = args.report or args.artifacts / "evaluation.json"
    report_path.write_text(json.dumps({"data_dir": str(args.data_dir), **result}, indent=2) + "\n")
    plots = plot(table, rules, result, report_path.parent)
    print(
        f"balanced accuracy {result['balanced_accuracy']:.3f}, EER {result['eer']:.3f}, AUC "
        f"{result['roc_auc']:.3f}, ECE {result['ece']:.3f}, tiered score {result['tiered_score']:.3f}; "
        f"wrote {report_path}" + "".join(f", {p}" for p in plots),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
