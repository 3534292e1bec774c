"""Which wav2vec2 layer should the hidden-state vote read? Every candidate scored from one graph.

Exports the model the artifacts' manifest names, all its transformer layers in FP32, as one ONNX
graph whose outputs are the hidden states after layers 1..N; runs it once per analysis window of
every clip of a labelled corpus (labels.csv, as export.calibrate reads it); and reports, per
layer, leave-one-group-out figures with export.calibrate's recipe: the hidden-state vote alone and
the five votes together. Random-init weights make the hidden-state vote a random feature: their
figures are labelled so and decide nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from export.calibrate import (
    L2,
    corpus_parser,
    cross_validate,
    fit_models,
    sample_weights,
    trainable,
)
from export.corpus import FeatureTable
from service.detector.artifacts import Artifacts, ModelOrigin
from service.detector.audio import SAMPLE_RATE, decode_audio, quiet_decoder_notes
from service.detector.features import normalize_waveform
from service.detector.measurements import MEASUREMENTS, VOTES, hidden_measurements
from service.detector.scoring import balanced_accuracy, equal_error_rate, roc_auc
from service.detector.votes import vote_logits
from service.detector.windows import Window, clip_features, window_features
from service.labels import Clip, read_labels

HIDDEN_VOTE = next(index for index, spec in enumerate(VOTES) if spec.source == "hidden")
INPUT_NAME = "input_values"


def export_every_layer(origin: ModelOrigin, path: Path) -> Path:
    """The FP32 graph of every transformer layer of ``origin``'s model, one output per layer."""
    import torch  # export extra only
    from torch.jit._trace import TracerWarning

    from export.model import ALL_LAYERS, ModelSource, for_export, load_model

    model, _ = load_model(replace(ModelSource.of(origin), layers=ALL_LAYERS))
    count = len(model.encoder.layers)

    class EveryLayer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = for_export(model)

        def forward(self, input_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(self.model(input_values, output_hidden_states=True).hidden_states[1:])

    names = [f"hidden_state_{layer}" for layer in range(1, count + 1)]
    axes = {name: {0: "batch_size", 1: "frames"} for name in names}
    with warnings.catch_warnings():  # as export_fp32: the trace's notes; the tests check the outputs
        warnings.simplefilter("ignore", TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter's
        torch.onnx.export(
            EveryLayer(),
            (torch.zeros(1, SAMPLE_RATE),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={INPUT_NAME: {0: "batch_size", 1: "sequence_length"}, **axes},
            opset_version=18,
            dynamo=False,
        )
    return path


@dataclass(frozen=True)
class EveryLayerEncoder:
    """The multi-output graph: a 16 kHz waveform -> its hidden states after every layer."""

    session: Any  # onnxruntime.InferenceSession

    @classmethod
    def load(cls, graph: Path, threads: int) -> EveryLayerEncoder:
        from service.detector.encoder import create_session

        return cls(create_session(graph, threads))

    @property
    def layers(self) -> int:
        return len(self.session.get_outputs())

    def __call__(self, waveform: np.ndarray) -> list[np.ndarray]:
        batch = normalize_waveform(waveform)[np.newaxis, :]
        return [np.asarray(states[0]) for states in self.session.run(None, {INPUT_NAME: batch})]


def layer_rows(encoder: EveryLayerEncoder, waveform: np.ndarray, window_seconds: float) -> np.ndarray:
    """layers x MEASUREMENTS: the clip's measurements as the service computes them (every window
    encoded), once for each layer's hidden states; one graph run per window."""
    by_window: dict[bytes, list[dict[str, float]]] = {}

    def last_layer(piece: np.ndarray) -> np.ndarray:
        states = encoder(piece)
        by_window[_digest(piece)] = [hidden_measurements(layer) for layer in states]
        return states[-1]

    windows = window_features(last_layer, waveform, window_seconds)
    rows = []
    for layer in range(encoder.layers):
        chosen = [_with_layer(window, waveform, by_window, layer) for window in windows]
        features = clip_features(chosen)
        rows.append([features[name] for name in MEASUREMENTS])
    return np.array(rows, dtype=np.float64)


def _with_layer(
    window: Window, waveform: np.ndarray, by_window: dict[bytes, list[dict[str, float]]], layer: int
) -> Window:
    piece = waveform[round(window.start * SAMPLE_RATE) : round(window.end * SAMPLE_RATE)]
    return replace(window, features=window.features | by_window[_digest(piece)][layer])


def _digest(piece: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(piece).tobytes(), digest_size=16).digest()


def layer_tables(clips: list[Clip], encoder: EveryLayerEncoder, window_seconds: float) -> list[FeatureTable]:
    """One FeatureTable per layer, layer 1 first."""
    rows = []
    for number, clip in enumerate(clips, 1):
        rows.append(layer_rows(encoder, decode_audio(clip.path.read_bytes()), window_seconds))
        if number % 50 == 0 or number == len(clips):
            print(f"every layer: {number}/{len(clips)} clips", file=sys.stderr)
    values = np.stack(rows)  # clips x layers x MEASUREMENTS
    return [FeatureTable(tuple(clips), values[:, layer]) for layer in range(values.shape[1])]


def hidden_vote_alone(table: FeatureTable, exclude: Sequence[str] = ()) -> dict[str, float]:
    """Leave-one-group-out figures of the hidden-state vote on its own (P(AI) > 0.5 says AI)."""
    groups = np.asarray(table.groups)
    is_ai, usable = table.is_ai, trainable(table, exclude)
    logits = np.zeros(len(groups))
    for name in sorted(set(groups)):
        test, train = groups == name, usable & (groups != name)
        weights = sample_weights(is_ai[train], list(groups[train]))
        models = fit_models(table.values[train], is_ai[train], weights, L2)
        logits[test] = vote_logits(models, table.values[test])[:, HIDDEN_VOTE]
    return {
        "balanced_accuracy": balanced_accuracy(is_ai, logits > 0),
        "eer": equal_error_rate(is_ai, logits),
        "roc_auc": roc_auc(is_ai, logits),
    }


def score_layers(tables: list[FeatureTable], exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    scores = []
    for layer, table in enumerate(tables, 1):
        together = cross_validate(table, exclude)
        five = {k: together[k] for k in ("balanced_accuracy", "eer", "roc_auc")}
        scores.append(
            {"layer": layer, "hidden_state_vote": hidden_vote_alone(table, exclude), "five_votes": five}
        )
    return scores


def scan(
    data_dir: Path, artifacts: Artifacts, threads: int, window_seconds: float, exclude: Sequence[str]
) -> dict[str, Any]:
    origin = artifacts.manifest().source
    with tempfile.TemporaryDirectory() as tmp:
        encoder = EveryLayerEncoder.load(export_every_layer(origin, Path(tmp) / "every-layer.onnx"), threads)
        tables = layer_tables(read_labels(data_dir), encoder, window_seconds)
    return {
        "source": origin.to_json(),
        "graph": "FP32, every transformer layer (the served graph is INT8 and ends at one of them)",
        "served_layers": origin.layers,
        "scheme": "leave-one-group-out",
        "excluded_families": list(exclude),
        "random_weights": origin.random_weights,
        "layers": score_layers(tables, exclude),
    }


def render(result: dict[str, Any]) -> str:
    """The per-layer table for a terminal or a build log."""
    lines = []
    if result["random_weights"]:
        lines.append(
            "RANDOM-INIT WEIGHTS: these per-layer figures describe random features and decide nothing"
        )
    lines.append(
        "layer | hidden-state vote: bal.acc EER AUC | five votes: bal.acc EER AUC (leave-one-group-out)"
    )
    for row in result["layers"]:
        hidden, five = row["hidden_state_vote"], row["five_votes"]
        mark = "  <- served" if row["layer"] == result["served_layers"] else ""
        figures = [f"{f['balanced_accuracy']:.3f} {f['eer']:.3f} {f['roc_auc']:.3f}" for f in (hidden, five)]
        lines.append(f"{row['layer']:5d} | {figures[0]} | {figures[1]}{mark}")
    best = max(result["layers"], key=lambda row: row["hidden_state_vote"]["roc_auc"])
    lines.append(f"best layer for the hidden-state vote by AUC: {best['layer']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = corpus_parser("python -m export.layerscan", __doc__)
    parser.add_argument(
        "--report", type=Path, default=None, help="JSON path (default: ARTIFACTS/layers.json)"
    )
    args = parser.parse_args(argv)
    quiet_decoder_notes()
    artifacts = Artifacts(args.artifacts)
    result = scan(args.data_dir, artifacts, args.threads, args.window_seconds, args.exclude_families)
    report = args.report or artifacts.folder / "layers.json"
    report.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{render(result)}\nwrote {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
