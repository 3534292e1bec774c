"""Offline export of wav2vec2 to the static INT8 ONNX graph the service runs.

Importing this package needs no torch: only ``export.__main__`` and the modules it loads do.
May import ``service.detector`` and ``service.labels``; never ``service.web`` or ``service.cli``
(import-linter checks it: pyproject.toml).
"""
