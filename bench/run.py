"""Benchmark voicecheck on this machine, in one run: model latency side by side (torch FP32, torch
dynamic INT8, onnxruntime FP32, onnxruntime dynamic INT8, our static INT8), then the service over
HTTP (end-to-end latency, cold start, peak RSS, RSS after 1,000 requests, throughput at several
concurrencies), the runtime install size, and the Render free tier simulated with a 10 % CPU quota.

Writes bench/results.json and bench/results.md. Figures from random-init weights say so.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_parser
from bench.freetier import render_free_tier
from bench.install import runtime_install_size
from bench.report import markdown
from bench.serving import service_figures
from service.detector.audio import quiet_decoder_notes
from tests.live import ROOT


def main() -> int:
    parser = bench_parser("run.py", __doc__, ROOT / "bench")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--soak", type=int, default=1000, help="requests for the RSS growth check")
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["model", "service", "install", "render"])
    args = parser.parse_args()
    quiet_decoder_notes()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
    }
    if "model" not in args.skip:
        from bench.model import model_latency  # torch: only for this part

        results["model"] = model_latency(args.artifacts, args.threads, args.repeats)
    if "service" not in args.skip:
        results["service"] = service_figures(
            args.artifacts, args.threads, args.repeats, args.soak, args.load_seconds
        )
    if "install" not in args.skip:
        results["install"] = runtime_install_size()
    if "render" not in args.skip:
        results["render"] = render_free_tier(args.artifacts)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if "model" in results:
        (args.out / "results.md").write_text(markdown(results))
    print(f"wrote {args.out / 'results.md'} and results.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
