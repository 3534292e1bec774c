from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from export import layerscan
from export.corpus import feature_row
from export.model import ModelSource, for_export, load_model
from export.onnx_export import export_fp32
from export.synthetic import speech_like
from service.detector.artifacts import Artifacts
from service.detector.encoder import Encoder
from service.detector.features import normalize_waveform
from tests.test_calibrate import toy_corpus  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def every_layer(layered_artifacts: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    origin = Artifacts(layered_artifacts[1]).manifest().source
    return layerscan.export_every_layer(origin, tmp_path_factory.mktemp("every") / "every.onnx")


def test_one_graph_gives_every_layers_hidden_states(every_layer: Path) -> None:
    model, _ = load_model(ModelSource("tiny", random_init="tiny", layers=12))
    batch = normalize_waveform(speech_like(2.0, 3, natural=True))[np.newaxis, :]
    with torch.inference_mode():
        states = model(torch.from_numpy(batch), output_hidden_states=True).hidden_states
    outputs = ort.InferenceSession(str(every_layer)).run(None, {"input_values": batch})
    assert len(outputs) == len(states) - 1 == 2
    for layer, output in enumerate(outputs, 1):
        np.testing.assert_allclose(output, states[layer].numpy(), atol=1e-4)


def test_each_layers_row_is_what_a_graph_ending_there_gives(every_layer: Path, tmp_path: Path) -> None:
    encoder = layerscan.EveryLayerEncoder.load(every_layer, threads=1)
    clip = speech_like(7.0, 4, natural=False)  # two windows of 5 s
    rows = layerscan.layer_rows(encoder, clip, 5.0)
    cut, _ = load_model(ModelSource("tiny", random_init="tiny", layers=1))
    one_layer = Encoder.load(export_fp32(for_export(cut), tmp_path / "cut.onnx"), threads=1)
    np.testing.assert_allclose(rows[0], feature_row(one_layer, clip, 5.0), rtol=1e-3, atol=1e-5)
    assert not np.allclose(rows[0], rows[1])


def test_layer_scan_reports_every_layer_labelled_random(
    layered_artifacts: dict[int, Path],
    toy_corpus: Path,  # noqa: F811
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    report = tmp_path / "layers.json"
    args = [
        str(toy_corpus),
        "--artifacts",
        str(layered_artifacts[1]),
        "--threads",
        "1",
        "--report",
        str(report),
    ]
    assert layerscan.main(args) == 0
    result = json.loads(report.read_text())
    assert [row["layer"] for row in result["layers"]] == [1, 2]
    assert result["served_layers"] == 1
    assert result["random_weights"] is True
    for row in result["layers"]:
        for figures in (row["hidden_state_vote"], row["five_votes"]):
            assert 0.0 <= figures["eer"] <= 1.0
            assert 0.0 <= figures["roc_auc"] <= 1.0
            assert 0.0 <= figures["balanced_accuracy"] <= 1.0
    printed = capfd.readouterr().err
    assert "RANDOM-INIT WEIGHTS" in printed
    assert "<- served" in printed
