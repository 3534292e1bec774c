"""FP32 ONNX -> static INT8, calibrated on real audio windows."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from service.features import normalize_waveform

ATTENTION_PRODUCT = re.compile(r"/attention/MatMul(_1)?$")


@dataclass(frozen=True)
class QuantRecipe:
    """Everything that decides the INT8 graph; recorded whole in the manifest."""

    quant_format: str = "QOperator"
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False
    calibrate_method: str = "MinMax"
    quantize_convs: bool = False
    exclude_first_conv: bool = True
    keep_attention_float: bool = True
    exclude_nodes: tuple[str, ...] = ()
    extra_options: dict[str, Any] = field(default_factory=dict)

    @property
    def op_types_to_quantize(self) -> tuple[str, ...]:
        return ("MatMul", "Conv") if self.quantize_convs else ("MatMul",)

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
    return excluded


def excluded_nodes(graph: onnx.ModelProto, recipe: QuantRecipe) -> list[str]:
    """Nodes kept in float. The first conv sees the raw waveform's scale and the positional conv
    is grouped (little to gain). The attention products (scores and context, activation x
    activation) gain little from INT8 and lose accuracy to a static range."""
    nodes = graph.graph.node
    convs = [node.name for node in nodes if node.op_type == "Conv"]
    positional = [name for name in convs if "pos_conv" in name]
    attention = [
        node.name for node in nodes if node.op_type == "MatMul" and ATTENTION_PRODUCT.search(node.name)
    ]
    return (
        (convs[:1] if recipe.exclude_first_conv else [])
        + (positional if recipe.quantize_convs else [])
        + (attention if recipe.keep_attention_float else [])
        + list(recipe.exclude_nodes)
    )
