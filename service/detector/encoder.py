"""The onnxruntime session that runs the INT8 wav2vec2 graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.detector.features import normalize_waveform

HiddenStates = Callable[[np.ndarray], np.ndarray]  # a 16 kHz waveform -> its last hidden state


def create_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU session tuned for low memory on a small box: activations come from onnxruntime's
    arena, which Encoder shrinks after every run (see shrinking_run_options); no memory-pattern
    planning (shapes change with every clip); no spinning threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Pre-packed weight copies cost memory and buy no speed here (docs/benchmarks.md#memory).
    options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def shrinking_run_options() -> ort.RunOptions:
    """Give the arena's free memory back after each run: peak RSS about a kept arena's, without RSS
    staying there, and below no arena's (glibc's heap fragments); see docs/benchmarks.md#memory."""
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


@dataclass(frozen=True)
class Encoder:
    """wav2vec2 as a function from a 16 kHz waveform to its last hidden state (frames x dims)."""

    session: ort.InferenceSession
    run_options: ort.RunOptions = field(default_factory=shrinking_run_options)

    @classmethod
    def load(cls, graph: Path, threads: int) -> Encoder:
        return cls(create_session(graph, threads))

    @property
    def input_name(self) -> str:
        return str(self.session.get_inputs()[0].name)

    @property
    def output_name(self) -> str:
        return str(self.session.get_outputs()[0].name)

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        batch = normalize_waveform(waveform)[np.newaxis, :]
        (hidden,) = self.session.run([self.output_name], {self.input_name: batch}, self.run_options)
        return np.asarray(hidden[0])
