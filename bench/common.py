"""What the benchmarks share: the clips they send, the server they start, how they time a call and
read a process's memory."""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from service.detector.audio import SAMPLE_RATE, decode_audio
from tests.live import ROOT, LiveServer, live_server

SAMPLE = ROOT / "tests" / "data" / "sample-espeak.mp3"


def bench_parser(script: str, description: str | None, out: Path) -> argparse.ArgumentParser:
    """A bench script's arguments: the graph (--artifacts), onnxruntime threads, where results go."""
    parser = argparse.ArgumentParser(
        prog=f"python bench/{script}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=out)
    return parser


API_KEY = "bench-key"
HEADERS = {"x-api-key": API_KEY, "content-type": "application/json"}
DETECT = "/api/voice-detection"


def speech(seconds: float) -> np.ndarray:
    """The espeak sample, repeated or cut to ``seconds``, at 16 kHz."""
    base = decode_audio(SAMPLE.read_bytes())
    return np.resize(base, int(seconds * SAMPLE_RATE)).astype(np.float32)


def mp3_body(seconds: float) -> bytes:
    """A detection request's JSON body: ``seconds`` of speech as base64 MP3."""
    buffer = io.BytesIO()
    sf.write(buffer, speech(seconds), SAMPLE_RATE, format="MP3")
    audio = base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"language": "English", "audioFormat": "mp3", "audioBase64": audio}).encode()


def post(client: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return client.post(f"{url}{DETECT}", content=body, headers=HEADERS, timeout=120.0)


def bench_server(
    artifacts: Path, threads: int, cgroup: Path | None = None, **env: str
) -> AbstractContextManager[LiveServer]:
    """The live server (tests/live.py) with the bench's key, quiet: LOG_LEVEL=warning."""
    return live_server(
        artifacts, API_KEY, threads=threads, cgroup=cgroup, env={"LOG_LEVEL": "warning", **env}
    )


def times_ms(run: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``run``, after one call to warm up."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return times


def timed(run: Callable[[], object], repeats: int) -> dict[str, float]:
    return summary(times_ms(run, repeats))


def summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)

    def percentile(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": percentile(0.9),
        "p95_ms": percentile(0.95),
        "n": len(ordered),
    }


def memory_kb(pid: int, field: str) -> int:
    """A line of /proc/PID/status in kB: VmRSS (now) or VmHWM (the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM again from the current RSS (Linux: 5 in /proc/PID/clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
