"""The model alone, side by side: torch FP32 of the full 12-layer model (what runs without the cut),
then, all cut to the graph's K transformer layers, torch FP32, torch dynamic INT8, onnxruntime FP32,
onnxruntime dynamic INT8 and our static INT8 graph, on 1, 5 and 10 s of speech; median and p90
milliseconds and each K-layer variant's per-frame cosine to torch FP32 of the same K layers."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from bench.common import speech, timed
from export.model import ALL_LAYERS, ModelSource, load_model
from export.onnx_export import export_fp32
from export.verify import frame_cosine
from service.detector.artifacts import Artifacts
from service.detector.encoder import Encoder
from service.detector.features import normalize_waveform


def torch_run(net: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(clip: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            batch = torch.from_numpy(normalize_waveform(clip)[np.newaxis, :])
            return np.asarray(net(batch).last_hidden_state[0].numpy())

    return run


def model_latency(artifacts: Path, threads: int, repeats: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    manifest = Artifacts(artifacts).manifest()
    model, source = load_model(ModelSource.of(manifest.source))
    full, _ = load_model(replace(source, layers=ALL_LAYERS))
    full_name, same_name = (
        f"torch FP32, {len(full.encoder.layers)} layers",
        f"torch FP32, {source.layers} layers",
    )
    dynamic_torch = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_fp32(model, Path(tmp) / "fp32.onnx")
        dynamic = Path(tmp) / "dynamic.onnx"
        quantize_dynamic(
            str(fp32), str(dynamic), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8
        )
        variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            full_name: torch_run(full),
            same_name: torch_run(model),
            "torch dynamic INT8": torch_run(dynamic_torch),
            "onnxruntime FP32": Encoder.load(fp32, threads),
            "onnxruntime dynamic INT8": Encoder.load(dynamic, threads),
            "ours: static INT8": Encoder.load(Artifacts(artifacts).graph, threads),
        }
        rows: dict[str, Any] = {}
        for seconds in (1.0, 5.0, 10.0):
            clip = speech(seconds)
            reference = variants[same_name](clip)
            for name, run in variants.items():
                entry: dict[str, float | None] = {
                    **timed(partial(run, clip), repeats),
                    "frame_cosine_min": None,
                }
                if name != full_name:  # the full model's last layer is another representation
                    entry["frame_cosine_min"] = round(float(frame_cosine(reference, run(clip)).min()), 4)
                rows.setdefault(name, {})[f"{seconds:g}s"] = entry
                print(f"model {name:26s} {seconds:4.0f} s: {entry['median_ms']:7.1f} ms", file=sys.stderr)
    return {
        "threads": threads,
        "source": manifest.source.to_json(),
        "layers": source.layers,
        "references": {"full": full_name, "same_layers": same_name},
        "variants": rows,
    }
