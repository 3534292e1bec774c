"""Peak memory of a scan worker on one long file (issue #19: a 20-minute file took a worker to 300 MB).

Writes ``--minutes`` of the espeak sample, repeated, as an MP3 and runs ``voicecheck scan`` on it with
one worker, polling the worker's peak RSS (VmHWM) as bench/ways.py does; also a 3 s file for the
worker's floor (the graph and onnxruntime). Writes bench/scan_memory.json.

    python -m export --random-init base --out /tmp/cli-art
    python bench/scan_memory.py --artifacts /tmp/cli-art
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_parser, speech
from bench.ways import scan_run
from service.detector.artifacts import Artifacts
from service.detector.audio import SAMPLE_RATE
from tests.live import ROOT


def long_file_scan(artifacts: Path, seconds: float, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        sf.write(folder / "long.mp3", speech(seconds), SAMPLE_RATE, format="MP3")
        result = scan_run(artifacts, folder, 1, threads)
    return {"file_seconds": seconds, **result}


def main() -> int:
    parser = bench_parser("scan_memory.py", __doc__, ROOT / "bench" / "scan_memory.json")
    parser.add_argument("--minutes", type=float, default=20.0)
    args = parser.parse_args()
    manifest = Artifacts(args.artifacts).manifest()
    results = {
        "graph": manifest.source.to_json(),
        "graph_mb": round(manifest.graph.bytes / 1e6, 1),
        "scans": [
            long_file_scan(args.artifacts, 3.0, args.threads),
            long_file_scan(args.artifacts, 60.0 * args.minutes, args.threads),
        ],
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
