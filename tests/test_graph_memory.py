"""The export's memory-saving rewrites keep the maths: the folded first layers, INT8 conv weights,
and which nodes stay in float."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from transformers import Wav2Vec2Model

from export.model import (
    FoldedFirstLayers,
    ModelSource,
    fold_first_layers,
    for_export,
    load_model,
)
from export.onnx_export import export_fp32
from export.pipeline import ExportOptions, run_export
from export.quantize import QuantRecipe, excluded_nodes, store_conv_weights_int8
from export.verify import compare
from service.detector.artifacts import Artifacts
from service.detector.encoder import Encoder
from tests.tiny_artifacts import TINY_MIN_FRAME_COSINE


def tiny_model() -> Wav2Vec2Model:
    model, _ = load_model(ModelSource("tiny", random_init="tiny", seed=3))  # eval mode, no weight norm
    norm = model.feature_extractor.conv_layers[0].layer_norm
    assert isinstance(norm, torch.nn.GroupNorm)  # a base model's first layer: what the fold folds
    with torch.no_grad():  # trained norms are not the identity; make sure the fold uses them
        norm.weight.normal_(1.0, 0.3)
        norm.bias.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("samples", [400, 401, 1_999, 16_000, 80_000])
def test_folded_first_layers_match_conv_groupnorm_gelu_conv(samples: int) -> None:
    original = tiny_model()
    folded = copy.deepcopy(original)
    fold_first_layers(folded)
    assert isinstance(folded.feature_extractor.conv_layers[0], FoldedFirstLayers)
    batch = torch.randn(2, samples, generator=torch.Generator().manual_seed(samples)) * 0.1
    batch[1] *= 0.01  # a quiet clip: the per-clip norm must not depend on loudness
    with torch.inference_mode():
        expected = original.feature_extractor(batch)
        got = folded.feature_extractor(batch)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-5 * float(expected.abs().max())


def test_conv_weights_stored_int8_give_nearly_the_same_output(tmp_path: Path) -> None:
    out = run_export(
        ExportOptions(
            out=tmp_path / "float",
            random_init="tiny",
            threads=1,
            convs="float",
            min_frame_cosine=TINY_MIN_FRAME_COSINE,
        )
    )
    assert out.quantization["convs"] == "float"
    graph = onnx.load(Artifacts(tmp_path / "float").graph)
    float_bytes = sum(i.ByteSize() for i in graph.graph.initializer)
    changed = store_conv_weights_int8(graph)
    convs = [node for node in graph.graph.node if node.op_type == "Conv"]
    assert changed
    assert len(set(changed)) == len(changed)
    initializers = {init.name: init for init in graph.graph.initializer}
    assert not any(conv.input[1] in initializers for conv in convs)  # every weight is dequantized
    int8 = [i for i in graph.graph.initializer if i.name.endswith("_int8")]
    assert all(numpy_helper.to_array(i).dtype == np.int8 for i in int8)
    assert sum(i.ByteSize() for i in graph.graph.initializer) < float_bytes
    onnx.checker.check_model(graph)
    onnx.save(graph, tmp_path / "int8_weights.onnx")

    clip = np.random.default_rng(0).standard_normal(24_000).astype(np.float32) * 0.1
    reference = Encoder.load(Artifacts(tmp_path / "float").graph, 1)(clip)
    stored = Encoder.load(tmp_path / "int8_weights.onnx", 1)(clip)
    cosine = (reference * stored).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(stored, axis=1)
    assert cosine.min() > 0.99


def test_default_export_has_no_float_conv_weights(exported_artifacts: Path) -> None:
    manifest = Artifacts(exported_artifacts).manifest()
    assert manifest.quantization["convs"] in ("int8", "int8-weights")
    graph = onnx.load(Artifacts(exported_artifacts).graph)
    float_weights = {i.name for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    assert not any(n.op_type == "Conv" and n.input[1] in float_weights for n in graph.graph.node)
    assert any(n.op_type == "QLinearConv" and "pos_conv" in n.name for n in graph.graph.node)


def test_float_nodes_are_the_first_layers_and_activation_products(tmp_path: Path) -> None:
    model, _ = load_model(ModelSource("tiny", random_init="tiny"))
    graph = onnx.load(export_fp32(for_export(model), tmp_path / "fp32.onnx"))
    nodes = graph.graph.node
    first_layers = {n.name for n in nodes if n.name.startswith("/feature_extractor/conv_layers.0/")}
    attention = {n.name for n in nodes if n.op_type == "MatMul" and "/attention/MatMul" in n.name}
    projections = {n.name for n in nodes if n.op_type == "MatMul" and "_proj/" in n.name}
    encoder_convs = {
        n.name
        for n in nodes
        if n.op_type == "Conv" and "conv_layers" in n.name and n.name not in first_layers
    }
    assert all((first_layers, attention, projections, encoder_convs))

    float_with_int8_weights = set(excluded_nodes(graph, QuantRecipe(convs="int8-weights")))
    assert first_layers | attention | encoder_convs == float_with_int8_weights
    assert first_layers | attention == set(excluded_nodes(graph, QuantRecipe(convs="int8")))


@pytest.mark.parametrize("samples", [400, 1_999, 12_345])
def test_exported_graph_follows_torch_at_any_length(exported_artifacts: Path, samples: int) -> None:
    """The time slices are computed from the input's length inside the graph, not traced as
    constants: odd and minimal lengths still match the unfolded torch model."""
    model, _ = load_model(ModelSource("tiny", random_init="tiny"))  # the fixture's seed
    clip = np.random.default_rng(samples).standard_normal(samples).astype(np.float32) * 0.1
    encoder = Encoder.load(Artifacts(exported_artifacts).graph, 1)
    assert compare(model, encoder, [clip]).frame_cosine_min > TINY_MIN_FRAME_COSINE
