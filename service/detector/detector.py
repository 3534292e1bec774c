"""``Detector.load(artifacts).analyse(audio)``: the graph, its manifest and its votes, loaded once,
and the one path from audio to a ``Detection`` that the web service, the command line and export call."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from service.detector.artifacts import Artifacts, Manifest
from service.detector.audio import SAMPLE_RATE, AudioLimits, check_decoded, resampled_blocks
from service.detector.encoder import Encoder, HiddenStates
from service.detector.errors import AudioError
from service.detector.malloc import release_free_memory
from service.detector.votes import VoteRules
from service.detector.windows import (
    DEFAULT_WINDOW_SECONDS,
    WINDOW_SECONDS_RANGE,
    Detection,
    EncoderBudget,
    Window,
    WindowAssembler,
    analyse_window,
    conclude,
    detect,
)


@dataclass(frozen=True)
class AnalysisOptions:
    """How a clip is analysed: its windows' length and what audio is accepted."""

    window_seconds: float = DEFAULT_WINDOW_SECONDS
    limits: AudioLimits = field(default_factory=AudioLimits)

    def __post_init__(self) -> None:
        low, high = WINDOW_SECONDS_RANGE
        if not low <= self.window_seconds <= high:
            raise ValueError(f"window_seconds must be {low:g}-{high:g}, not {self.window_seconds!r}")


Audio = bytes | BinaryIO | str | os.PathLike[str]


@dataclass(frozen=True)
class Detector:
    """A graph, its manifest and the votes learned for it, loaded once; each ``analyse`` gives a
    ``Detection``. Thread-safe: onnxruntime sessions run concurrently."""

    encoder: HiddenStates
    rules: VoteRules
    manifest: Manifest
    options: AnalysisOptions = field(default_factory=AnalysisOptions)

    @classmethod
    def load(
        cls, artifacts: str | os.PathLike[str], threads: int = 0, options: AnalysisOptions | None = None
    ) -> Detector:
        """The folder export wrote (model.onnx, manifest.json, votes.json), the votes checked to
        belong to the graph (ArtifactsError says what to re-run). ``threads``: onnxruntime's intra-op
        threads, 0 = every core."""
        folder = Artifacts(Path(artifacts))
        manifest, rules = folder.load()
        return cls(Encoder.load(folder.graph, threads), rules, manifest, options or AnalysisOptions())

    @property
    def weights(self) -> str:
        """ "pretrained" or "random-init": where the graph's weights came from (every answer says it)."""
        return self.manifest.source.kind

    def with_options(self, options: AnalysisOptions) -> Detector:
        """The same loaded graph and votes, analysing with ``options``."""
        return replace(self, options=options)

    def analyse(self, audio: Audio) -> Detection:
        """Decode ``audio`` (its bytes, a seekable file open at its start, or a path) and classify
        it, one window at a time (memory does not grow with its length); AudioError says why audio
        cannot be."""
        try:
            with _opened(audio) as source:
                return self._analyse_by_window(source)
        finally:
            release_free_memory()

    def analyse_waveform(self, waveform: np.ndarray, budget: EncoderBudget | None = None) -> Detection:
        """A decoded clip: float32 mono at 16 kHz (``audio.SAMPLE_RATE``; ``audio.decode_audio``);
        ``budget``: how much wav2vec2 may take (a deadline), spread over the clip."""
        return detect(self.encoder, self.rules, waveform, self.options.window_seconds, budget)

    def assembler(self, sample_rate: int = SAMPLE_RATE, encoding: str = "pcm_f32le") -> WindowAssembler:
        """Cuts PCM as it arrives (``feed``) or 16 kHz blocks (``add``) into this detector's windows."""
        return WindowAssembler(
            sample_rate, self.options.window_seconds, encoding, self.options.limits.corrupt_peak
        )

    def analyse_window(self, piece: np.ndarray, start: int) -> Window:
        """One window of an assembler (``start``: its first sample's index at 16 kHz)."""
        return analyse_window(self.encoder, piece, start)

    def conclude(self, windows: list[Window], samples: int) -> Detection:
        """The clip's detection from its analysed windows (``samples``: its length at 16 kHz)."""
        return conclude(self.rules, windows, samples)

    def _analyse_by_window(self, source: BinaryIO) -> Detection:
        """Errors in the whole-clip order: decoding, then the whole clip's checks, then the analysis."""
        assembler = self.assembler()
        windows: list[Window] = []
        failed: list[AudioError] = []

        def analyse(pieces: list[tuple[int, np.ndarray]]) -> None:
            for start, piece in pieces if not failed else ():
                try:
                    windows.append(self.analyse_window(piece, start))
                except AudioError as exc:
                    failed.append(exc)

        for block in resampled_blocks(source, self.options.limits):
            analyse(assembler.add(block))
        pieces, total = assembler.finish()
        check_decoded(total / SAMPLE_RATE, assembler.swing, self.options.limits)
        analyse(pieces)
        if failed:
            raise failed[0]
        return self.conclude(windows, total)


def _opened(audio: Audio) -> contextlib.AbstractContextManager[BinaryIO]:
    if isinstance(audio, str | os.PathLike):
        return open(audio, "rb")
    return contextlib.nullcontext(io.BytesIO(audio) if isinstance(audio, bytes) else audio)
