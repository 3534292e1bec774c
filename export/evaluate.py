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

from export.calibrate import add_budget_argument
from export.corpus import FeatureTable, compute_features, read_labels
from export.metrics import report, roc_curve
from export.robustness import PERTURBATIONS, Perturbation
from service.audio import quiet_decoder_notes
from service.model import Encoder, create_session
from service.settings import DEFAULT_WINDOW_SECONDS
from service.verdict import AI, Verdict, VoteRules


def verdicts(table: FeatureTable, rules: VoteRules) -> list[Verdict]:
    return [rules.decide(table.row(i)) for i in range(len(table.clips))]


def evaluate(table: FeatureTable, decided: list[Verdict], rules: VoteRules) -> dict[str, Any]:
    ai_probability = np.array([v.ai_probability for v in decided])
    predicted_ai = np.array([v.classification == AI for v in decided])
    return report(table.is_ai, ai_probability, predicted_ai, table.groups) | {
        "votes_calibrated": rules.calibrated
    }


def robustness(
    table: FeatureTable,
    decided: list[Verdict],
    encoder: Encoder,
    rules: VoteRules,
    window_seconds: float,
    count: int,
) -> dict[str, Any]:
    """Share of verdicts that change under each perturbation, on ``count`` clips spread over the corpus."""
    chosen = list(range(0, len(table.clips), max(1, len(table.clips) // count)))[:count]
    baseline = np.array([decided[i].classification for i in chosen])
    clips = [table.clips[i] for i in chosen]
    flips = {}
    for name, perturb in PERTURBATIONS.items():
        changed = compute_features(clips, encoder, window_seconds, _as_file(perturb))
        flips[name] = float(
            np.mean(np.array([v.classification for v in verdicts(changed, rules)]) != baseline)
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
    parser = argparse.ArgumentParser(prog="python -m export.evaluate", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="folder with labels.csv and the audio it lists")
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="folder with model.onnx and votes.json"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="JSON report path (default: ARTIFACTS/evaluation.json)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window-seconds", type=float, default=DEFAULT_WINDOW_SECONDS)
    add_budget_argument(parser)
    parser.add_argument(
        "--robustness",
        type=int,
        default=0,
        metavar="N",
        help="also re-run N clips at -20 dB, +6 dB, with 20 dB SNR noise and as 32 kbit/s MP3",
    )
    args = parser.parse_args(argv)
    quiet_decoder_notes()
    rules = VoteRules.load(args.artifacts / "votes.json")
    encoder = Encoder(create_session(args.artifacts / "model.onnx", args.threads))
    table = compute_features(
        read_labels(args.data_dir), encoder, args.window_seconds, max_encoded_seconds=args.max_encoded_seconds
    )
    decided = verdicts(table, rules)
    result = evaluate(table, decided, rules)
    if args.robustness:
        result["robustness"] = robustness(
            table, decided, encoder, rules, args.window_seconds, args.robustness
        )
    report_path = args.report or args.artifacts / "evaluation.json"
    report_path.write_text(json.dumps({"data_dir": str(args.data_dir), **result}, indent=2) + "\n")
    plots = plot(table, decided, result, report_path.parent)
    print(
        f"balanced accuracy {result['balanced_accuracy']:.3f}, EER {result['eer']:.3f}, AUC "
        f"{result['roc_auc']:.3f}, ECE {result['ece']:.3f}, tiered score {result['tiered_score']:.3f}; "
        f"wrote {report_path}" + "".join(f", {p}" for p in plots),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
