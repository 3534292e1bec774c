"""The detector room: audio in, a ``Detection`` out; torch-free and knowing nothing of HTTP.

May import: numpy, soundfile, soxr, onnxruntime, the standard library and ``service.labels``;
never ``service.web``, ``service.cli`` or ``export`` (import-linter checks it: pyproject.toml).
``Detector.load(artifacts).analyse(audio)`` is its front door (service/detector/detector.py).
"""

from service.detector.artifacts import ArtifactsError
from service.detector.audio import AudioLimits
from service.detector.detector import AnalysisOptions, Detector
from service.detector.errors import AudioError
from service.detector.windows import Detection

__all__ = ["AnalysisOptions", "ArtifactsError", "AudioError", "AudioLimits", "Detection", "Detector"]
