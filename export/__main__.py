"""Export wav2vec2 to the static INT8 ONNX graph the service runs, and verify it against FP32.

Writes OUT/model.onnx, OUT/manifest.json and a provisional OUT/votes.json (learned from a
synthetic toy set and marked uncalibrated; run vote calibration, ``voicecheck calibrate``, for real votes).
Nothing is written when any step, or the fidelity check, fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from export.model import ALL_LAYERS, DEFAULT_LAYERS, PRETRAINED
from export.pipeline import ExportError, ExportOptions, SourceUnavailable, run_export
from export.quantize import CONV_CHOICES, QuantRecipe
from service.detector.artifacts import Artifacts
from service.detector.audio import quiet_decoder_notes

EXIT_FAILED = 1
EXIT_NO_MODEL = 3  # the model could not be loaded: scripts/serve falls back to --random-init on this only


def parse_args(argv: Sequence[str] | None) -> ExportOptions:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder, e.g. artifacts")
    parser.add_argument("--model", default=PRETRAINED, help="hub id or local folder")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.add_argument(
        "--random-init",
        choices=("base", "tiny"),
        default=None,
        help="no download: random weights, base-size or tiny architecture (offline and tests)",
    )
    parser.add_argument(
        "--layers",
        type=int,
        choices=range(1, ALL_LAYERS + 1),
        default=DEFAULT_LAYERS,
        metavar="K",
        help="transformer layers to keep, 1-12: the graph ends at layer K and the hidden-state vote "
        "reads it (default: %(default)s; docs/export.md#how-many-layers)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights and synthetic audio")
    parser.add_argument(
        "--range-audio",
        "--calibration",
        dest="range_audio",
        type=Path,
        default=None,
        help="folder of audio that sets the INT8 activation ranges (range calibration); default: synthetic",
    )
    parser.add_argument("--min-frame-cosine", type=float, default=0.98, help="fidelity floor vs FP32")
    parser.add_argument("--threads", type=int, default=2, help="threads for verification and timing")
    parser.add_argument(
        "--range-method",
        "--calibrate-method",
        dest="range_method",
        choices=("MinMax", "Entropy", "Percentile"),
        default="MinMax",
        help="how onnxruntime sets each INT8 range from the range audio (its CalibrationMethod)",
    )
    parser.add_argument(
        "--convs",
        choices=("auto", *CONV_CHOICES),
        default="auto",
        help="convs: INT8 (fastest), INT8 weights with float arithmetic, float; "
        "auto = the first that meets the fidelity floor",
    )
    args = parser.parse_args(argv)
    return ExportOptions(
        out=args.out,
        model=args.model,
        revision=args.revision,
        random_init=args.random_init,
        seed=args.seed,
        layers=args.layers,
        range_audio=args.range_audio,
        min_frame_cosine=args.min_frame_cosine,
        threads=args.threads,
        recipe=QuantRecipe(calibrate_method=args.range_method),
        convs=args.convs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    quiet_decoder_notes()
    try:
        manifest = run_export(options)
    except SourceUnavailable as exc:
        print(f"export: the model is not available here: {exc}", file=sys.stderr)
        return EXIT_NO_MODEL
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    fidelity = manifest.fidelity
    print(
        f"wrote {Artifacts(options.out).graph} ({manifest.graph.bytes / 1e6:.1f} MB); "
        f"frame cosine min {fidelity['frame_cosine_min']:.4f} mean {fidelity['frame_cosine_mean']:.4f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
