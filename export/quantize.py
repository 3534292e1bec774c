"""FP32 ONNX -> static INT8, calibrated on real audio windows."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from service.detector.features import normalize_waveform

# How convs are stored and run, smallest and fastest first. "int8": static INT8 (QLinearConv)
# everywhere but the first layer; "int8-weights": the positional conv in static INT8, the feature
# encoder's convs with INT8 weights and float arithmetic; "float": float.
CONV_CHOICES = ("int8", "int8-weights", "float")


@dataclass(frozen=True)
class QuantRecipe:
    """Everything that decides the INT8 graph; recorded whole in the manifest."""

    quant_format: str = "QOperator"
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False
    calibrate_method: str = "MinMax"
    convs: str = "int8-weights"
    exclude_first_conv: bool = True
    keep_activation_products_float: bool = True
    exclude_nodes: tuple[str, ...] = ()
    extra_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.convs not in CONV_CHOICES:
            raise ValueError(f"convs must be one of {CONV_CHOICES}, not {self.convs!r}")

    @property
    def op_types_to_quantize(self) -> tuple[str, ...]:
        return ("MatMul",) if self.convs == "float" else ("MatMul", "Conv")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "op_types_to_quantize": list(self.op_types_to_quantize)}


class WindowReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds normalised waveforms, one per call, as the service would."""

    def __init__(self, input_name: str, windows: Iterable[np.ndarray]) -> None:
        self._input_name = input_name
        self._windows: Iterator[np.ndarray] = iter(windows)

    def get_next(self) -> dict[str, np.ndarray] | None:
        window = next(self._windows, None)
        if window is None:
            return None
        return {self._input_name: normalize_waveform(window)[np.newaxis, :]}


def quantize(
    fp32_path: Path, out_path: Path, windows: Iterable[np.ndarray], recipe: QuantRecipe
) -> list[str]:
    """Write the INT8 graph; return the names of the nodes kept in float."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(prepared)
        excluded = excluded_nodes(graph, recipe)
        quantize_static(
            str(prepared),
            str(out_path),
            WindowReader(graph.graph.input[0].name, windows),
            quant_format=QuantFormat[recipe.quant_format],
            op_types_to_quantize=list(recipe.op_types_to_quantize),
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            activation_type=QuantType[recipe.activation_type],
            weight_type=QuantType[recipe.weight_type],
            nodes_to_exclude=excluded,
            calibrate_method=CalibrationMethod[recipe.calibrate_method],
            calibration_providers=["CPUExecutionProvider"],
            extra_options=dict(recipe.extra_options),
        )
    if recipe.convs != "float":
        quantized = onnx.load(out_path)
        store_conv_weights_int8(quantized)
        onnx.save(quantized, out_path)
    return excluded


def store_conv_weights_int8(graph: onnx.ModelProto) -> list[str]:
    """Weight-only INT8 for the convs left in float: each weight is stored as symmetric INT8 per
    output channel and dequantized just before each conv that uses it, so the arithmetic stays
    float while the resident weights shrink fourfold. Returns the convs changed."""
    initializers = {init.name: init for init in graph.graph.initializer}
    stored: set[str] = set()
    nodes: list[onnx.NodeProto] = []
    changed: list[str] = []
    for node in graph.graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" else None
        if weight is not None and weight.data_type == onnx.TensorProto.FLOAT:
            if weight.name not in stored:
                graph.graph.initializer.extend(_int8_copy(weight))
                stored.add(weight.name)
            dequantized = f"{node.name}_weight"
            nodes += _dequantize_when_needed(weight.name, dequantized, after=node.input[0])
            node.input[1] = dequantized
            changed.append(node.name)
        nodes.append(node)
    for name in stored:
        graph.graph.initializer.remove(initializers[name])
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    return changed


def _int8_copy(weight: onnx.TensorProto) -> list[onnx.TensorProto]:
    values = numpy_helper.to_array(weight)
    scale = np.abs(values).reshape(len(values), -1).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    stored = np.rint(values / scale.reshape(-1, *[1] * (values.ndim - 1))).astype(np.int8)
    return [
        numpy_helper.from_array(stored, f"{weight.name}_int8"),
        numpy_helper.from_array(scale, f"{weight.name}_scale"),
        numpy_helper.from_array(np.zeros_like(stored, shape=scale.shape), f"{weight.name}_zero"),
    ]


def _dequantize_when_needed(weight: str, output: str, after: str) -> list[onnx.NodeProto]:
    """Nodes that rebuild ``weight`` from INT8 as ``output``. onnxruntime runs nodes fed only by
    constants first, which would keep every dequantized weight alive from the start; scaling by
    the sign of the batch size (always 1) makes the dequantization wait for the conv's input."""
    return [
        helper.make_node("Shape", [after], [f"{output}_batch"], end=1),
        helper.make_node("Cast", [f"{output}_batch"], [f"{output}_batch_float"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Sign", [f"{output}_batch_float"], [f"{output}_one"]),
        helper.make_node("Mul", [f"{weight}_scale", f"{output}_one"], [f"{output}_scale"]),
        helper.make_node(
            "DequantizeLinear", [f"{weight}_int8", f"{output}_scale", f"{weight}_zero"], [output], axis=0
        ),
    ]


def excluded_nodes(graph: onnx.ModelProto, recipe: QuantRecipe) -> list[str]:
    """Nodes kept in float. The first conv layer (folded: the first three) sees the raw
    waveform's scale and computes per-clip statistics. Products of two activations (attention
    scores and context) gain little from INT8 and lose accuracy to a static range."""
    nodes = graph.graph.node
    constants = {init.name for init in graph.graph.initializer}
    convs = [node.name for node in nodes if node.op_type == "Conv"]
    excluded = list(recipe.exclude_nodes)
    if recipe.exclude_first_conv and convs:
        first_layer = convs[0].rpartition("/")[0] + "/"
        excluded += [node.name for node in nodes if node.name.startswith(first_layer)]
    if recipe.convs == "int8-weights":
        excluded += [name for name in convs if "pos_conv" not in name]
    if recipe.keep_activation_products_float:
        excluded += [
            node.name for node in nodes if node.op_type == "MatMul" and not constants.intersection(node.input)
        ]
    return list(dict.fromkeys(excluded))
