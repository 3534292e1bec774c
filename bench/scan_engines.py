"""``voicecheck scan``: the local engine (1 and 2 worker processes) against ``--engine ray`` (1 and 2
actors) on the same clips (issue #23).

For each run: audio-seconds per wall-second over the whole scan and, for Ray, after its first row
(the steady rate, without its start-up), the time from the start of the scan to the first row
(Ray: starting a local Ray, the actors and their graphs), and the peak RSS of each worker or actor.
Ray is started by the scan itself, as ``voicecheck scan --engine ray`` does with no --ray-address.
Writes bench/scan_engines.json. Run on a quiet machine:

    python -m export --random-init base --out /tmp/cli-art
    python bench/scan_engines.py --artifacts /tmp/cli-art --clips 200
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_parser
from bench.ways import make_clips, scan_run
from service.cli.scan import ScanOptions, read_rows, scan
from service.detector.artifacts import Artifacts
from tests.live import ROOT


def ray_run(artifacts: Path, folder: Path, actors: int, threads: int) -> dict[str, Any]:
    out = folder.parent / f"ray-{actors}.jsonl"
    out.unlink(missing_ok=True)
    options = ScanOptions(
        paths=(folder,),
        out=out,
        artifacts=artifacts,
        workers=actors,
        threads=threads,
        progress=False,
        engine="ray",
    )
    times: list[float] = []
    finished = threading.Event()
    watcher = threading.Thread(target=_watch_rows, args=(out, times, finished), daemon=True)
    began = time.perf_counter()
    watcher.start()
    report = scan(options, warn=lambda message: None)
    wall = time.perf_counter() - began
    finished.set()
    watcher.join()
    seconds = [float(row.get("seconds") or 0) for row in read_rows(out)]
    first = times[0] - began if times else wall
    steady = sum(seconds[1 : len(times)]) / max(1e-9, times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "engine": "ray",
        "actors": actors,
        "threads_per_actor": threads,
        "files": report.scanned,
        "failed": sum(row.get("status") != "success" for row in report.rows),
        "audio_seconds": round(report.audio_seconds, 1),
        "wall_seconds": round(wall, 1),
        "audio_seconds_per_wall_second": round(report.audio_seconds / wall, 1),
        "seconds_to_first_row": round(first, 1),
        "audio_seconds_per_wall_second_after_first_row": round(steady, 1),
        "actor_processes": len(report.workers),
        "peak_rss_per_actor_mb": sorted(round(worker.peak_rss_mb) for worker in report.workers),
    }


def _watch_rows(out: Path, times: list[float], finished: threading.Event) -> None:
    """When each line of ``out`` appeared (10 ms resolution)."""
    while not finished.is_set():
        lines = out.read_bytes().count(b"\n") if out.exists() else 0
        times.extend([time.perf_counter()] * (lines - len(times)))
        time.sleep(0.01)


def main() -> int:
    parser = bench_parser("scan_engines.py", __doc__, ROOT / "bench" / "scan_engines.json")
    parser.add_argument("--clips", type=int, default=200)
    args = parser.parse_args()
    manifest = Artifacts(args.artifacts).manifest()
    results: dict[str, Any] = {
        "graph": manifest.source.to_json(),
        "cpus": os.cpu_count(),
        "ray": ray.__version__,
        "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        results["clips"] = args.clips
        results["clips_audio_seconds"] = round(make_clips(folder, args.clips), 1)
        half = max(1, args.threads // 2)
        results["runs"] = [
            {"engine": "local", **scan_run(args.artifacts, folder, 1, args.threads)},
            {"engine": "local", **scan_run(args.artifacts, folder, 2, half)},
            ray_run(args.artifacts, folder, 1, args.threads),
            ray_run(args.artifacts, folder, 2, half),
        ]
    results["load_average_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
