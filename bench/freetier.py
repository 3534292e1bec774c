"""Render's free plan, simulated: THREADS=1 under a CFS quota of 10 ms per 100 ms (a tenth of one
core); the cold start and the time to answer a 10 s clip. Needs root and the cgroup v1 cpu controller."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import bench_server, mp3_body, post

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


def render_free_tier(artifacts: Path) -> dict[str, Any]:
    if os.geteuid() != 0 or not (CGROUP_CPU / "cgroup.procs").exists():
        return {"measured": False, "why": "needs root and the cgroup v1 cpu controller"}
    group = CGROUP_CPU / f"voicecheck-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("10000")
        body = mp3_body(10.0)
        with bench_server(artifacts, 1, cgroup=group) as server, httpx.Client() as client:
            start = time.perf_counter()
            status = post(client, server.url, body).status_code
            seconds = time.perf_counter() - start
        return {
            "measured": True,
            "cpu": "10% of one core",
            "cold_start_s": round(server.startup_seconds, 2),
            "clip_10s_seconds": round(seconds, 2),
            "status": status,
        }
    finally:
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                (CGROUP_CPU / "cgroup.procs").write_text(pid)
            group.rmdir()
