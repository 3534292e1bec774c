from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from export.pipeline import ExportError, ExportOptions, run_export, split_windows
from service.detector.artifacts import Artifacts
from tests.tiny_artifacts import FIXTURE, TINY_MIN_FRAME_COSINE

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_export_writes_a_static_int8_graph(exported_artifacts: Path) -> None:
    graph = onnx.load(Artifacts(exported_artifacts).graph)
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["input_values"]
    assert "last_hidden_state" in [o.name for o in graph.graph.output]


def test_manifest_records_source_recipe_fidelity_and_versions(exported_artifacts: Path) -> None:
    manifest = json.loads(Artifacts(exported_artifacts).manifest_file.read_text())
    graph = manifest["graph"]
    assert len(graph["sha256"]) == 64
    assert graph["bytes"] == Artifacts(exported_artifacts).graph.stat().st_size
    assert graph["opset"] >= 17
    assert graph["inputs"] == {"input_values": ["batch_size", "sequence_length"]}
    assert "last_hidden_state" in graph["outputs"]
    assert manifest["source"]["kind"] == "random-init"
    assert "random weights" in manifest["source"]["warning"]
    recipe = manifest["quantization"]
    for key in (
        "quant_format",
        "activation_type",
        "weight_type",
        "per_channel",
        "calibrate_method",
        "excluded_nodes",
    ):
        assert key in recipe
    assert recipe["range_calibration_set"]["kind"] == "synthetic"
    search = recipe["recipe_search"]
    assert search[0]["convs"] == "int8"  # the fastest candidate is always tried first
    assert search[-1]["convs"] == recipe["convs"]
    fidelity = manifest["fidelity"]
    floor = fidelity["min_frame_cosine_floor"]
    assert floor == TINY_MIN_FRAME_COSINE
    assert search[-1]["frame_cosine_min"] >= floor
    assert all(attempt["frame_cosine_min"] < floor for attempt in search[:-1])
    assert floor <= fidelity["frame_cosine_min"] <= fidelity["frame_cosine_mean"] <= 1.0 + 1e-6
    assert fidelity["relative_l2"] > 0
    assert manifest["latency_5s"]["torch_fp32_ms"] > 0
    assert manifest["latency_5s"]["onnx_int8_ms"] > 0
    for package in ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime"):
        assert manifest["versions"][package] != "not installed"
    assert manifest["created"]


def test_export_writes_uncalibrated_votes_for_its_own_graph(exported_artifacts: Path) -> None:
    votes = json.loads(Artifacts(exported_artifacts).votes_file.read_text())
    assert votes["calibrated"] is False
    assert votes["provenance"]["graph_sha256"] == Artifacts(exported_artifacts).manifest().graph.sha256
    assert len(votes["votes"]) == 5


def test_fidelity_floor_rejects_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="below the floor"):
        run_export(ExportOptions(out=out, random_init="tiny", min_frame_cosine=1.01, threads=1))
    assert list(out.iterdir()) == []


def test_float_convs_skip_the_search(tmp_path: Path) -> None:
    manifest = run_export(
        ExportOptions(
            out=tmp_path, random_init="tiny", threads=1, convs="float", min_frame_cosine=TINY_MIN_FRAME_COSINE
        )
    )
    assert [a["convs"] for a in manifest.quantization["recipe_search"]] == ["float"]
    assert "Conv" not in manifest.quantization["op_types_to_quantize"]


def test_reexport_is_reproducible(exported_artifacts: Path, tmp_path: Path) -> None:
    run_export(
        ExportOptions(out=tmp_path, random_init="tiny", threads=1, min_frame_cosine=TINY_MIN_FRAME_COSINE)
    )
    first = Artifacts(exported_artifacts).manifest().graph.sha256
    second = Artifacts(tmp_path).manifest().graph.sha256
    assert first == second


def test_other_seed_gives_another_graph(exported_artifacts: Path, tmp_path: Path) -> None:
    run_export(
        ExportOptions(
            out=tmp_path, random_init="tiny", seed=7, threads=1, min_frame_cosine=TINY_MIN_FRAME_COSINE
        )
    )
    first = Artifacts(exported_artifacts).manifest().graph.sha256
    assert Artifacts(tmp_path).manifest().graph.sha256 != first


def test_range_audio_folder_of_recordings_is_used(tmp_path: Path) -> None:
    from tests.conftest import encode, speech

    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    for i in range(6):
        (audio_dir / f"clip{i}.flac").write_bytes(encode(speech(3.0, seed=50 + i), 16_000, "FLAC"))
    manifest = run_export(
        ExportOptions(
            out=tmp_path / "out",
            random_init="tiny",
            range_audio=audio_dir,
            threads=1,
            min_frame_cosine=TINY_MIN_FRAME_COSINE,
        )
    )
    range_set = manifest.quantization["range_calibration_set"]
    assert range_set["kind"] == "recordings"
    assert range_set["range_files"] == 4
    assert range_set["verify_files"] == 2


def test_pretrained_without_hub_fails_fast_naming_random_init(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "export", "--model", "facebook/wav2vec2-base", "--out", str(tmp_path / "o")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3  # the code scripts/serve falls back on
    assert "--random-init" in result.stderr
    assert not Artifacts(tmp_path / "o").graph.exists()


def test_range_audio_flag_keeps_its_old_name() -> None:
    from export.__main__ import parse_args

    for flag in ("--range-audio", "--calibration"):
        options = parse_args(["--out", "o", flag, "corpus", "--range-method", "Entropy"])
        assert options.range_audio == Path("corpus")
        assert options.recipe.calibrate_method == "Entropy"


def test_a_k_layer_graph_ends_at_layer_k(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from export.model import ModelSource, for_export, load_model
    from export.onnx_export import export_fp32
    from export.synthetic import speech_like
    from service.detector.features import normalize_waveform

    full, _ = load_model(ModelSource("tiny", random_init="tiny", layers=12))
    cut, source = load_model(ModelSource("tiny", random_init="tiny", layers=1))
    assert source.layers == len(cut.encoder.layers) == 1
    assert len(full.encoder.layers) == 2  # --layers beyond the model's depth keeps every layer
    batch = normalize_waveform(speech_like(2.0, 5, natural=True))[np.newaxis, :]
    with torch.inference_mode():
        states = full(torch.from_numpy(batch), output_hidden_states=True).hidden_states
    graph = export_fp32(for_export(cut), tmp_path / "cut.onnx")
    (ended,) = ort.InferenceSession(str(graph)).run(["last_hidden_state"], {"input_values": batch})
    np.testing.assert_allclose(ended, states[1].numpy(), atol=1e-4)
    assert np.abs(ended - states[2].numpy()).max() > 1e-2  # a hundred times the tolerance


def test_k_layer_export_is_smaller_and_its_manifest_says_k(layered_artifacts: dict[int, Path]) -> None:
    cut, full = (Artifacts(layered_artifacts[k]).manifest() for k in (1, 2))
    assert (cut.source.layers, full.source.layers) == (1, 2)
    assert cut.graph.bytes < full.graph.bytes
    assert cut.graph.op_counts["Softmax"] == 1 < full.graph.op_counts["Softmax"]
    # against torch FP32 of the same one-layer model
    assert cut.fidelity["frame_cosine_min"] >= cut.fidelity["min_frame_cosine_floor"]
    assert json.loads(Artifacts(layered_artifacts[1]).votes_file.read_text())["provenance"]["layers"] == 1


def test_votes_learned_for_other_layers_are_refused(
    layered_artifacts: dict[int, Path], tmp_path: Path
) -> None:
    import shutil

    from service.detector.artifacts import ArtifactsError

    mixed = Artifacts(tmp_path)
    for source, target in zip(Artifacts(layered_artifacts[1]).files, mixed.files, strict=True):
        shutil.copy(source, target)
    shutil.copy(Artifacts(layered_artifacts[2]).votes_file, mixed.votes_file)
    with pytest.raises(ArtifactsError, match=r"learned on wav2vec2 layer 2 but .* ends at layer 1"):
        mixed.load()
    assert Artifacts(layered_artifacts[1]).load()[0].source.layers == 1


def key_paths(raw: object, prefix: str = "") -> set[str]:
    if not isinstance(raw, dict):
        return {prefix}
    return {path for key, value in raw.items() for path in key_paths(value, f"{prefix}/{key}")}


def test_the_committed_service_fixture_has_the_shape_of_an_export_made_now(exported_artifacts: Path) -> None:
    """tests/data/tiny-artifacts stands in for this export in the service's tests (which run
    without torch). When this fails, regenerate it: python -m tests.tiny_artifacts"""
    committed, fresh = Artifacts(FIXTURE), Artifacts(exported_artifacts)
    manifest, _ = committed.load()  # whole, and its votes for its own graph and today's measurements
    fresh_manifest = fresh.manifest()
    assert manifest.source == fresh_manifest.source
    assert (manifest.graph.inputs, manifest.graph.outputs) == (
        fresh_manifest.graph.inputs,
        fresh_manifest.graph.outputs,
    )
    for name in ("manifest_file", "votes_file"):
        shape, fresh_shape = (key_paths(json.loads(getattr(a, name).read_text())) for a in (committed, fresh))
        ops = {path for path in shape | fresh_shape if "/op_counts/" in path}
        assert shape - ops == fresh_shape - ops, f"{name}: run python -m tests.tiny_artifacts"
    assert sum(path.stat().st_size for path in committed.files) < 300_000


@pytest.mark.parametrize("seconds", [0.5, 9.9, 10.0, 10.1, 25.0, 300.0])
def test_windows_cover_the_clip_and_stay_short(seconds: float) -> None:
    samples = int(seconds * 16_000)
    windows = split_windows(samples, 10.0)
    assert windows[0][0] == 0
    assert windows[-1][1] == samples
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(windows))
    assert all(end - start <= 10.0 * 16_000 for start, end in windows)
    assert len(windows) == max(1, int(np.ceil(samples / 160_000)))
