"""The service over HTTP: cold start, end-to-end latency of a 5 s MP3, peak RSS after a 10 s clip,
RSS growth over a soak of short requests, and throughput at concurrencies 1, 2, 4 and 8."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from bench.common import bench_server, memory_kb, mp3_body, post, timed
from bench.load import throughput


def service_figures(
    artifacts: Path, threads: int, repeats: int, soak: int, load_seconds: float
) -> dict[str, Any]:
    five, ten, short = mp3_body(5.0), mp3_body(10.0), mp3_body(2.0)
    with bench_server(artifacts, threads, MAX_QUEUE="64") as server, httpx.Client() as client:
        url, pid = server.url, server.process.pid
        assert post(client, url, five).status_code == 200
        e2e = timed(lambda: post(client, url, five), repeats)
        assert post(client, url, ten).status_code == 200
        peak_after_10s = memory_kb(pid, "VmHWM")
        rss_before = memory_kb(pid, "VmRSS")
        failures = sum(post(client, url, short).status_code != 200 for _ in range(soak))
        rss_after = memory_kb(pid, "VmRSS")
        rates = [throughput(url, five, concurrency, load_seconds) for concurrency in (1, 2, 4, 8)]
    cold = server.startup_seconds
    print(f"service: cold start {cold:.2f} s, e2e 5 s {e2e['median_ms']} ms", file=sys.stderr)
    return {
        "cold_start_s": round(cold, 3),
        "e2e_5s_mp3": e2e,
        "peak_rss_mb_after_10s_clip": round(peak_after_10s / 1024, 1),
        "soak": {
            "requests": soak,
            "failures": failures,
            "rss_mb_before": round(rss_before / 1024, 1),
            "rss_mb_after": round(rss_after / 1024, 1),
        },
        "throughput": rates,
    }
