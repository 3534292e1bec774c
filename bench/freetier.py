"""Render's free plan, simulated: THREADS=1 under a CFS quota of 10 ms per 100 ms (a tenth of one
core) with render.yaml's limits; the cold start, the time to answer a 10 s and a 60 s clip, and how
many seconds of the 60 s clip wav2vec2 saw within the deadline. Needs root and the cgroup v1 cpu
controller."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import bench_server, mp3_body, post

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
RENDER_LIMITS = {"MAX_AUDIO_SECONDS": "60", "DEADLINE_SECONDS": "20", "MAX_QUEUE": "4"}  # render.yaml


def _timed_post(client: httpx.Client, url: str, body: bytes) -> dict[str, Any]:
    start = time.perf_counter()
    response = post(client, url, body)
    seconds = round(time.perf_counter() - start, 2)
    segments = response.json().get("segments", []) if response.status_code == 200 else []
    encoded = round(sum(segment["encodedSeconds"] for segment in segments), 2)
    return {"seconds": seconds, "status": response.status_code, "encoded_seconds": encoded}


def render_free_tier(artifacts: Path) -> dict[str, Any]:
    if os.geteuid() != 0 or not (CGROUP_CPU / "cgroup.procs").exists():
        return {"measured": False, "why": "needs root and the cgroup v1 cpu controller"}
    group = CGROUP_CPU / f"voicecheck-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("10000")
        with (
            bench_server(artifacts, 1, cgroup=group, **RENDER_LIMITS) as server,
            httpx.Client(timeout=60) as client,
        ):
            short = _timed_post(client, server.url, mp3_body(10.0))
            long = _timed_post(client, server.url, mp3_body(60.0))
        return {
            "measured": True,
            "cpu": "10% of one core",
            "cold_start_s": round(server.startup_seconds, 2),
            "clip_10s_seconds": short["seconds"],
            "status": short["status"],
            "clip_60s_seconds": long["seconds"],
            "clip_60s_status": long["status"],
            "clip_60s_encoded_seconds": long["encoded_seconds"],
        }
    finally:
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                (CGROUP_CPU / "cgroup.procs").write_text(pid)
            group.rmdir()
