"""The export steps, in order: load -> ONNX FP32 -> check -> static INT8 -> verify -> write."""

from __future__ import annotations

import itertools
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.calibrate import fit_votes
from export.corpus import feature_row
from export.manifest import build_manifest
from export.model import DEFAULT_LAYERS, PRETRAINED, ModelLoadError, ModelSource, for_export, load_model
from export.onnx_export import export_fp32
from export.quantize import CONV_CHOICES, QuantRecipe, quantize
from export.synthetic import labelled_clips, speech_like
from export.verify import compare, latency_ms
from service.detector.artifacts import Artifacts, Manifest
from service.detector.audio import SAMPLE_RATE, decode_audio
from service.detector.encoder import Encoder
from service.detector.votes import VoteProvenance, VoteRules
from service.detector.windows import DEFAULT_WINDOW_SECONDS

AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus"}
RANGE_WINDOWS = 32
RANGE_WINDOW_SECONDS = 6.0
VERIFY_EVERY = 5  # every fifth range-audio file is held out for verification
TOY_CLIPS = 40


class ExportError(RuntimeError):
    """An export step failed; nothing was written."""


class SourceUnavailable(ExportError):
    """The model itself could not be loaded (no hub, no such model or folder)."""


@dataclass(frozen=True)
class ExportOptions:
    out: Path
    model: str = PRETRAINED
    revision: str | None = None
    random_init: str | None = None
    seed: int = 0
    layers: int = DEFAULT_LAYERS  # transformer layers kept: the graph ends at this one
    range_audio: Path | None = None  # audio that sets the INT8 activation ranges
    min_frame_cosine: float = 0.98
    threads: int = 2
    recipe: QuantRecipe = field(default_factory=QuantRecipe)
    convs: str = "auto"  # one of CONV_CHOICES, or "auto": the first of them faithful enough


def candidate_recipes(options: ExportOptions) -> list[QuantRecipe]:
    """Each choice only keeps its place when the verification passes."""
    choices = CONV_CHOICES if options.convs == "auto" else (options.convs,)
    return [replace(options.recipe, convs=convs) for convs in choices]


@dataclass(frozen=True)
class AudioSets:
    range_windows: list[np.ndarray]
    verify: list[np.ndarray]
    description: dict[str, Any]


def log(message: str) -> None:
    print(f"[export {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_export(options: ExportOptions) -> Manifest:
    torch.set_num_threads(options.threads)
    log("loading model")
    try:
        model, source = load_model(
            ModelSource(options.model, options.revision, options.random_init, options.seed, options.layers)
        )
    except ModelLoadError as exc:
        raise SourceUnavailable(str(exc)) from exc
    log(f"keeping transformer layers 1-{source.layers}")
    audio = audio_sets(options)
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=options.out) as tmp:
        staging = Artifacts(Path(tmp))
        log("exporting FP32 ONNX (optimum-onnx) and checking it")
        fp32 = export_fp32(for_export(model), staging.folder / "fp32.onnx")
        graph = staging.graph
        attempts: list[dict[str, Any]] = []
        for recipe in candidate_recipes(options):
            log(
                f"quantizing: static {recipe.quant_format}, convs {recipe.convs}, "
                f"{len(audio.range_windows)} range windows"
            )
            excluded = quantize(fp32, graph, audio.range_windows, recipe)
            encoder = Encoder.load(graph, options.threads)
            fidelity = compare(model, encoder, audio.verify)
            attempts.append({"convs": recipe.convs, **fidelity.as_dict()})
            kept = fidelity.frame_cosine_min >= options.min_frame_cosine
            log(
                f"verified on {len(audio.verify)} held-out clips: per-frame cosine min "
                f"{fidelity.frame_cosine_min:.4f} (floor {options.min_frame_cosine}): "
                + ("kept" if kept else "recipe rejected (an expected step of the recipe search)")
            )
            if kept:
                break
        else:
            raise ExportError(
                f"per-frame cosine min {fidelity.frame_cosine_min:.4f} is below the floor "
                f"{options.min_frame_cosine} (--min-frame-cosine); nothing written"
            )
        fp32.unlink()
        timing = latency_ms(model, encoder, speech_like(5.0, options.seed + 777, natural=True))
        manifest = build_manifest(
            graph,
            source=source.describe(),
            quantization={
                **recipe.as_dict(),
                "excluded_nodes": excluded,
                "range_calibration_set": audio.description,
                "recipe_search": attempts,
            },
            fidelity={**fidelity.as_dict(), "min_frame_cosine_floor": options.min_frame_cosine},
            latency_5s={**timing, "threads": options.threads},
        )
        log("learning provisional (uncalibrated) votes from the synthetic toy set")
        staging.write(manifest, provisional_votes(encoder, manifest, options.seed))
        staging.move_to(Artifacts(options.out))
    return manifest


def audio_sets(options: ExportOptions) -> AudioSets:
    if options.range_audio is None:
        base = options.seed * 1000
        return AudioSets(
            range_windows=[speech_like(4.0, base + i, natural=i % 2 == 0) for i in range(24)],
            verify=[speech_like(5.0, base + 500 + i, natural=i % 2 == 0) for i in range(4)],
            description={"kind": "synthetic", "note": "built-in speech-like signals, not recordings"},
        )
    files = sorted(p for p in options.range_audio.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    random.Random(options.seed).shuffle(files)  # every voice and speaker, not the first folder's
    verify_files, range_files = (
        files[::VERIFY_EVERY],
        [f for i, f in enumerate(files) if i % VERIFY_EVERY],
    )
    if not verify_files or not range_files:
        raise ExportError(
            f"--range-audio {options.range_audio} needs at least 2 audio files ({sorted(AUDIO_SUFFIXES)})"
        )
    decoded = (w for f in range_files for w in _windows(_decode(f)))
    windows = list(itertools.islice(decoded, RANGE_WINDOWS))
    return AudioSets(
        range_windows=windows,
        verify=[_decode(f) for f in verify_files[:8]],
        description={
            "kind": "recordings",
            "dir": str(options.range_audio),
            "range_files": len(range_files),
            "verify_files": min(8, len(verify_files)),
            "windows": len(windows),
        },
    )


def _decode(path: Path) -> np.ndarray:
    return decode_audio(path.read_bytes())


def split_windows(samples: int, window_seconds: float) -> list[tuple[int, int]]:
    """Near-equal windows no longer than ``window_seconds`` covering the whole clip (the range
    audio's; the detector analyses ``windows.analysis_windows``)."""
    count = max(1, math.ceil(samples / (window_seconds * SAMPLE_RATE)))
    edges = np.linspace(0, samples, count + 1).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _windows(waveform: np.ndarray) -> list[np.ndarray]:
    return [waveform[a:b] for a, b in split_windows(len(waveform), RANGE_WINDOW_SECONDS)]


def provisional_votes(encoder: Encoder, manifest: Manifest, seed: int) -> VoteRules:
    clips = labelled_clips(TOY_CLIPS, 3.0, seed=seed * 1000 + 900)
    values = np.array([feature_row(encoder, clip, DEFAULT_WINDOW_SECONDS) for clip, _ in clips])
    is_ai = np.array([not natural for _, natural in clips])
    provenance = VoteProvenance(
        graph_sha256=manifest.graph.sha256,
        source="export",
        layers=manifest.source.layers,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        warning="uncalibrated: learned from synthetic toy signals, not speech; run voicecheck calibrate",
    )
    groups = [f"toy-{i}" for i in range(len(clips))]  # each toy clip its own "speaker"
    return fit_votes(values, is_ai, groups, provenance, calibrated=False)
