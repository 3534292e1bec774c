"""Benchmark the two new ways in: the live stream's latency and the scan's throughput.

Stream: a real ``python -m service`` on 127.0.0.1 and the real client (websockets) playing a clip in
real time (and four times faster); latency is from sending the frame holding a window's last sample
to receiving that window's segment message. Scan: ``voicecheck scan`` on synthetic clips (MP3, WAV,
FLAC, OGG, 2-6 s) with 1 and 2 workers; throughput in audio seconds per wall second and each worker
process's peak RSS (VmHWM, polled). Writes bench/ways.json. Figures from random-init weights say so.

    python bench/ways.py --artifacts /tmp/ways-art
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import API_KEY, bench_parser, bench_server, memory_kb, speech, summary, timed
from export.synthetic import speech_like
from service.cli.stream_client import StreamOptions, play
from service.detector.artifacts import Artifacts
from tests.live import ROOT

FORMATS = (("mp3", "MP3", None), ("wav", "WAV", "PCM_16"), ("flac", "FLAC", None), ("ogg", "OGG", "VORBIS"))


def stream_latency(artifacts: Path, threads: int, seconds: float, speed: float) -> dict[str, Any]:
    pcm = speech(seconds).astype("<f4").tobytes()  # pcm_f32le, what `voicecheck stream` sends
    with bench_server(artifacts, threads) as server:
        options = StreamOptions(
            server.url.replace("http://", "ws://") + "/api/voice-detection/stream", API_KEY, speed=speed
        )
        before = inference_totals(server.url)
        began = time.perf_counter()
        result = asyncio.run(play(pcm, 16_000, options))
        wall = time.perf_counter() - began
        after = inference_totals(server.url)
    assert result.summary is not None, result.error
    windows = after[1] - before[1]
    return {
        "audio_seconds": seconds,
        "speed": speed,
        "wall_seconds": round(wall, 1),
        "segments": len(result.segments),
        "latency": summary([1000 * x for x in result.latencies]),
        "server_inference_mean_ms": round(1000 * (after[0] - before[0]) / max(1, windows), 1),
    }


def inference_totals(url: str) -> tuple[float, int]:
    """(seconds, count) of the server's inference histogram: the windows' analysis time."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = dict(
        line.split() for line in text.splitlines() if line.startswith("voicecheck_inference_seconds_")
    )
    return float(values.get("voicecheck_inference_seconds_sum", 0)), int(
        values.get("voicecheck_inference_seconds_count", 0)
    )


def window_reference(artifacts: Path, threads: int, repeats: int = 10) -> dict[str, float]:
    """In-process time of one 5 s window's analysis (encoder + features): the floor under the
    stream's latency on this machine at this moment (it is shared, and its speed drifts)."""
    from service.detector.encoder import Encoder
    from service.detector.windows import analyse_window

    encoder = Encoder.load(Artifacts(artifacts).graph, threads)
    clip = speech(5.0)
    return timed(lambda: analyse_window(encoder, clip, 0), repeats)


def make_clips(folder: Path, count: int) -> float:
    rng = np.random.default_rng(0)
    total = 0.0
    for index in range(count):
        seconds = float(rng.uniform(2.0, 6.0))
        clip = speech_like(seconds, seed=index, natural=index % 2 == 0)
        suffix, fmt, subtype = FORMATS[index % len(FORMATS)]
        sf.write(folder / f"clip{index:03d}.{suffix}", clip, 16_000, format=fmt, subtype=subtype)
        total += len(clip) / 16_000
    return total


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def scan_run(artifacts: Path, folder: Path, workers: int, threads: int) -> dict[str, Any]:
    out = folder.parent / f"results-{workers}.jsonl"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "service.cli.main", "scan", str(folder), "--out", str(out)]
    command += [
        "--artifacts",
        str(artifacts),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--no-progress",
    ]
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    while process.poll() is None:
        try:
            for child in children(process.pid):
                peaks[child] = max(peaks.get(child, 0), memory_kb(child, "VmHWM"))
        except (OSError, KeyError):
            pass  # a worker starting or exiting between the listing and the read
        time.sleep(0.1)
    wall = time.perf_counter() - began
    output = process.stdout.read() if process.stdout else ""
    assert process.returncode == 0, output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    audio = sum(row.get("seconds", 0) for row in rows)
    workers_rss = sorted(peaks.values())[-workers:]  # the pool's workers (spawn also starts a helper)
    return {
        "workers": workers,
        "threads_per_worker": threads,
        "files": len(rows),
        "failed": sum(row["status"] != "success" for row in rows),
        "audio_seconds": round(audio, 1),
        "wall_seconds": round(wall, 1),
        "audio_seconds_per_wall_second": round(audio / wall, 1),
        "peak_rss_per_worker_mb": [round(kb / 1024) for kb in workers_rss],
    }


def main() -> int:
    parser = bench_parser("ways.py", __doc__, ROOT / "bench" / "ways.json")
    parser.add_argument("--stream-seconds", type=float, default=60.0)
    parser.add_argument("--clips", type=int, default=200, help="clips for the scan (0: stream only)")
    args = parser.parse_args()
    manifest = Artifacts(args.artifacts).manifest()
    results: dict[str, Any] = {
        "graph": manifest.source.to_json(),
        "random_weights": manifest.source.random_weights,
        "load_average_at_start": os.getloadavg(),
        "window_analysis_in_process": window_reference(args.artifacts, args.threads),
        "stream": [
            stream_latency(args.artifacts, args.threads, args.stream_seconds, 1.0),
            stream_latency(args.artifacts, args.threads, 4 * args.stream_seconds, 4.0),
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.clips:
            return _write(results, args.out)
        folder = Path(tmp) / "clips"
        folder.mkdir()
        results["scan_clips_audio_seconds"] = round(make_clips(folder, args.clips), 1)
        results["scan"] = [
            scan_run(args.artifacts, folder, 1, args.threads),
            scan_run(args.artifacts, folder, 2, max(1, args.threads // 2)),
        ]
    return _write(results, args.out)


def _write(results: dict[str, Any], out: Path) -> int:
    results["load_average_at_end"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
