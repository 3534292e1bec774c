"""The tiny random-init export the service tests run on, committed so that they need no torch.

tests/data/tiny-artifacts holds a real export (the tiny wav2vec2 architecture, random weights, seed
0): graph, manifest and provisional votes, under 200 KB. Regenerate it when the export's output or
the measurements change (a test in tests/test_export.py says when):

    python -m tests.tiny_artifacts
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from service.detector.artifacts import Artifacts

FIXTURE = Path(__file__).parent / "data" / "tiny-artifacts"
# The export's default floor is for real weights. A random tiny graph's INT8 fidelity moves with the
# CPU's integer kernels (0.9749 without AVX-512 VNNI, above 0.98 with it), and these tests need a graph.
TINY_MIN_FRAME_COSINE = 0.95


def export_tiny(out: Path, layers: int | None = None) -> Path:
    """A real export of the tiny random-init architecture into ``out`` (needs the export extra)."""
    from export.pipeline import ExportOptions, run_export  # torch: only where a graph is exported

    options = ExportOptions(out=out, random_init="tiny", threads=1, min_frame_cosine=TINY_MIN_FRAME_COSINE)
    run_export(options if layers is None else replace(options, layers=layers))
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        made = Artifacts(export_tiny(Path(scratch)))
        FIXTURE.mkdir(parents=True, exist_ok=True)
        for source, target in zip(made.files, Artifacts(FIXTURE).files, strict=True):
            shutil.copy(source, target)
    size = sum(path.stat().st_size for path in Artifacts(FIXTURE).files)
    print(f"wrote {FIXTURE} ({size / 1024:.0f} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
