"""Benchmark voicecheck on this machine, in one run: model latency side by side (torch FP32, torch
dynamic INT8, onnxruntime FP32, onnxruntime dynamic INT8, our static INT8), then the service over
HTTP (end-to-end latency, cold start, peak RSS, RSS after 1,000 requests, throughput at several
concurrencies), the runtime install size, and the Render free tier simulated with a 10 % CPU quota.

Writes bench/results.json and bench/results.md. Figures from random-init weights say so.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.audio import SAMPLE_RATE, decode_audio, quiet_decoder_notes  # noqa: E402
from service.features import normalize_waveform  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "sample-espeak.mp3"
API_KEY = "bench-key"
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


def speech(seconds: float) -> np.ndarray:
    base = decode_audio(SAMPLE.read_bytes())
    return np.resize(base, int(seconds * SAMPLE_RATE)).astype(np.float32)


def mp3_body(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, speech(seconds), SAMPLE_RATE, format="MP3")
    audio = base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"language": "English", "audioFormat": "mp3", "audioBase64": audio}).encode()


def timed(run: Callable[[], object], repeats: int) -> dict[str, float]:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return summary(times)


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


# --- model only -------------------------------------------------------------------------------


def model_latency(artifacts: Path, threads: int, repeats: int) -> dict[str, Any]:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.model import ModelSource, load_model
    from export.onnx_export import export_fp32
    from export.verify import frame_cosine
    from service.model import Encoder

    torch.set_num_threads(threads)
    manifest = json.loads((artifacts / "manifest.json").read_text())
    source = manifest["source"]
    model, _ = load_model(
        ModelSource(
            source.get("model_id", "facebook/wav2vec2-base"),
            source.get("revision"),
            source.get("architecture") if source["kind"] == "random-init" else None,
            source.get("seed", 0),
        )
    )
    dynamic_torch = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_fp32(model, Path(tmp) / "fp32.onnx")
        dynamic = Path(tmp) / "dynamic.onnx"
        quantize_dynamic(
            str(fp32), str(dynamic), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8
        )
        encoders = {
            "onnxruntime FP32": Encoder.load(fp32, threads),
            "onnxruntime dynamic INT8": Encoder.load(dynamic, threads),
            "ours: static INT8": Encoder.load(artifacts / "model.onnx", threads),
        }

        def torch_run(net: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
            def run(clip: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    batch = torch.from_numpy(normalize_waveform(clip)[np.newaxis, :])
                    return np.asarray(net(batch).last_hidden_state[0].numpy())

            return run

        variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "torch FP32": torch_run(model),
            "torch dynamic INT8": torch_run(dynamic_torch),
            **encoders,
        }
        rows: dict[str, Any] = {}
        for seconds in (1.0, 5.0, 10.0):
            clip = speech(seconds)
            reference = variants["torch FP32"](clip)
            for name, run in variants.items():
                entry = timed(lambda run=run, clip=clip: run(clip), repeats)
                entry["frame_cosine_min"] = round(float(frame_cosine(reference, run(clip)).min()), 4)
                rows.setdefault(name, {})[f"{seconds:g}s"] = entry
                print(f"model {name:26s} {seconds:4.0f} s: {entry['median_ms']:7.1f} ms", file=sys.stderr)
    return {"threads": threads, "source": source, "variants": rows}


# --- the service over HTTP --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def service(
    artifacts: Path, threads: int, cgroup: Path | None = None, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    """Start ``python -m service``; yield (process, base url, seconds until /health answered 200)."""
    port = free_port()
    environment = {
        **os.environ,
        "API_KEY": API_KEY,
        "ARTIFACTS_DIR": str(artifacts),
        "PORT": str(port),
        "THREADS": str(threads),
        "LOG_LEVEL": "warning",
        **env,
    }

    def enter_cgroup() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=ROOT,
        env=environment,
        preexec_fn=enter_cgroup,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        cold = wait_healthy(url, process, started)
        yield process, url, cold
    finally:
        process.terminate()
        process.wait(30)


def wait_healthy(url: str, process: subprocess.Popen[bytes], started: float, limit: float = 120.0) -> float:
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise RuntimeError("the service exited during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError("the service did not become healthy")


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def post(client: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return client.post(
        f"{url}/api/voice-detection",
        content=body,
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
        timeout=120.0,
    )


async def load(url: str, body: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """A bounded closed-loop load generator: ``concurrency`` clients posting for ``seconds``."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await client.post(
                f"{url}/api/voice-detection",
                content=body,
                headers={"x-api-key": API_KEY, "content-type": "application/json"},
            )
            latencies.append(1000 * (time.perf_counter() - start))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ok = statuses.get(200, 0)
    return {
        "concurrency": concurrency,
        "requests": sum(statuses.values()),
        "ok_per_second": round(ok / elapsed, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        **summary(latencies),
    }


def service_figures(
    artifacts: Path, threads: int, repeats: int, soak: int, load_seconds: float
) -> dict[str, Any]:
    five, ten, short = mp3_body(5.0), mp3_body(10.0), mp3_body(2.0)
    with service(artifacts, threads, MAX_QUEUE="64") as (process, url, cold), httpx.Client() as client:
        assert post(client, url, five).status_code == 200
        e2e = timed(lambda: post(client, url, five), repeats)
        assert post(client, url, ten).status_code == 200
        peak_after_10s = memory_kb(process.pid, "VmHWM")
        rss_before = memory_kb(process.pid, "VmRSS")
        failures = sum(post(client, url, short).status_code != 200 for _ in range(soak))
        rss_after = memory_kb(process.pid, "VmRSS")
        throughput = [asyncio.run(load(url, five, c, load_seconds)) for c in (1, 2, 4, 8)]
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
        "throughput": throughput,
    }


def render_free_tier(artifacts: Path) -> dict[str, Any]:
    """THREADS=1 under a CFS quota of 10 ms per 100 ms: a tenth of one core, like Render's free plan."""
    if os.geteuid() != 0 or not (CGROUP_CPU / "cgroup.procs").exists():
        return {"measured": False, "why": "needs root and the cgroup v1 cpu controller"}
    group = CGROUP_CPU / f"voicecheck-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("10000")
        body = mp3_body(10.0)
        with service(artifacts, 1, cgroup=group) as (_, url, cold), httpx.Client() as client:
            start = time.perf_counter()
            status = post(client, url, body).status_code
            seconds = time.perf_counter() - start
        return {
            "measured": True,
            "cpu": "10% of one core",
            "cold_start_s": round(cold, 2),
            "clip_10s_seconds": round(seconds, 2),
            "status": status,
        }
    finally:
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                (CGROUP_CPU / "cgroup.procs").write_text(pid)
            group.rmdir()


def runtime_install_size() -> dict[str, Any]:
    """A fresh venv with only the runtime dependencies; site-packages measured on disk."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, str(ROOT)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        total = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
        has_torch = (site / "torch").exists()
        without_pip = total - sum(
            f.stat().st_size for d in site.glob("pip*") for f in d.rglob("*") if f.is_file()
        )
    return {
        "site_packages_mb": round(total / 1e6, 1),
        "without_pip_mb": round(without_pip / 1e6, 1),
        "torch_installed": has_torch,
    }


# --- report -----------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    model = results["model"]
    random = model["source"].get("kind") == "random-init"
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {results['machine']}. Command: `{results['command']}`. {results['date']}.",
        (
            "**Weights: random-init (same architecture as wav2vec2-base); speed and memory are those of "
            "the real model, fidelity is not.**"
            if random
            else f"Weights: {model['source']}."
        ),
        "",
        f"## Model only ({model['threads']} threads), median / p90 ms, per-frame cosine min vs torch FP32",
        "",
        "| variant | 1 s | 5 s | 10 s | 5 s vs torch FP32 |",
        "|---|---|---|---|---|",
    ]
    torch_5 = model["variants"]["torch FP32"]["5s"]["median_ms"]
    for name, row in model["variants"].items():
        cells = [
            f"{row[k]['median_ms']} / {row[k]['p90_ms']} (cos {row[k]['frame_cosine_min']})"
            for k in ("1s", "5s", "10s")
        ]
        lines.append(f"| {name} | {' | '.join(cells)} | {row['5s']['median_ms'] / torch_5:.2f}x |")
    svc = results.get("service")
    if svc:
        soak = svc["soak"]
        lines += [
            "",
            "## Service over HTTP",
            "",
            "| figure | value |",
            "|---|---|",
            f"| cold start (process start → /health 200) | {svc['cold_start_s']} s |",
            "| end to end, 5 s MP3 in base64 | "
            f"{svc['e2e_5s_mp3']['median_ms']} ms median, {svc['e2e_5s_mp3']['p90_ms']} ms p90 |",
            f"| peak RSS after a 10 s clip | {svc['peak_rss_mb_after_10s_clip']} MB |",
            f"| RSS before → after {soak['requests']} requests | "
            f"{soak['rss_mb_before']} → {soak['rss_mb_after']} MB ({soak['failures']} failures) |",
            "",
            "| concurrency | requests | OK/s | median ms | p90 ms | statuses |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {t['concurrency']} | {t['requests']} | {t['ok_per_second']} | "
            f"{t['median_ms']} | {t['p90_ms']} | {t['statuses']} |"
            for t in svc["throughput"]
        ]
    size = results.get("install")
    if size:
        lines += [
            "",
            f"Runtime install (fresh venv, runtime deps only): site-packages {size['site_packages_mb']} MB "
            f"({size['without_pip_mb']} MB without pip), torch installed: {size['torch_installed']}.",
        ]
    render = results.get("render")
    if render:
        outcome = (
            f"10 s clip answered in {render['clip_10s_seconds']} s (HTTP {render['status']}), "
            f"cold start {render['cold_start_s']} s."
            if render["measured"]
            else f"not measured ({render['why']})."
        )
        lines += ["", "Render free tier simulated (10 % of one core, THREADS=1): " + outcome]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--soak", type=int, default=1000, help="requests for the RSS growth check")
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--skip", nargs="*", default=[], choices=["model", "service", "install", "render"])
    args = parser.parse_args()
    quiet_decoder_notes()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
    }
    if "model" not in args.skip:
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
