"""manifest.json: where the graph came from, how it was made, and how faithful it is."""

from __future__ import annotations

import importlib.metadata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.detector.artifacts import GraphInfo, Manifest, ModelOrigin, sha256_of

PACKAGES = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "numpy")


def graph_interface(path: Path) -> dict[str, Any]:
    import onnx  # export extra only; calibrate needs nothing here but sha256_of

    graph = onnx.load(path, load_external_data=False)

    def shape(value: Any) -> list[str | int]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {
        "opset": max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")),
        "inputs": {i.name: shape(i) for i in graph.graph.input},
        "outputs": {o.name: shape(o) for o in graph.graph.output},
        "op_counts": _op_counts(graph),
    }


def _op_counts(graph: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def build_manifest(
    graph_path: Path,
    source: ModelOrigin,
    quantization: dict[str, Any],
    fidelity: dict[str, Any],
    latency_5s: dict[str, Any],
) -> Manifest:
    graph = GraphInfo(
        file=graph_path.name,
        sha256=sha256_of(graph_path),
        bytes=graph_path.stat().st_size,
        **graph_interface(graph_path),
    )
    return Manifest(
        graph=graph,
        source=source,
        quantization=quantization,
        fidelity=fidelity,
        latency_5s=latency_5s,
        versions=versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
