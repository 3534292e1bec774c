"""torch -> FP32 ONNX through optimum-onnx, then checked."""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import onnx
from optimum.exporters.onnx import onnx_export_from_model
from torch.jit._trace import TracerWarning
from transformers import Wav2Vec2Model

OPSET = 18
INPUT_NAME = "input_values"
OUTPUT_NAME = "last_hidden_state"


def export_fp32(model: Wav2Vec2Model, out_path: Path) -> Path:
    """Export with dynamic batch and time axes; ``onnx.checker`` must pass."""
    # optimum's only note here is that weight deduplication needs `accelerate`: wav2vec2 shares none
    logging.getLogger("optimum.exporters.onnx.base").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # the trace fixes shapes-dependent Python branches; the verify step checks the result
        warnings.simplefilter("ignore", TracerWarning)
        onnx_export_from_model(model, output=tmp, task="feature-extraction", opset=OPSET, do_validation=False)
        graph = onnx.load(Path(tmp) / "model.onnx")
    _check_io(graph)
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, out_path)
    return out_path


def _check_io(graph: onnx.ModelProto) -> None:
    inputs = [i.name for i in graph.graph.input]
    outputs = [o.name for o in graph.graph.output]
    if inputs != [INPUT_NAME] or OUTPUT_NAME not in outputs:
        raise RuntimeError(f"unexpected graph interface: inputs {inputs}, outputs {outputs}")
