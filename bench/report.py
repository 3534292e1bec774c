"""The Markdown writer: bench/results.md from what bench/run.py gathered (bench/results.json)."""

from __future__ import annotations

from typing import Any


def markdown(results: dict[str, Any]) -> str:
    model = results["model"]
    random = model["source"].get("kind") == "random-init"
    full, same = model["references"]["full"], model["references"]["same_layers"]
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
        f"## Model only ({model['threads']} threads), median / p90 ms, per-frame cosine min vs {same}",
        "",
        f"| variant | 1 s | 5 s | 10 s | 5 s vs {full} | 5 s vs {same} |",
        "|---|---|---|---|---|---|",
    ]
    full_5, same_5 = (model["variants"][name]["5s"]["median_ms"] for name in (full, same))
    for name, row in model["variants"].items():
        cells = [
            f"{row[k]['median_ms']} / {row[k]['p90_ms']} (cos {row[k]['frame_cosine_min'] or '—'})"
            for k in ("1s", "5s", "10s")
        ]
        ratios = f"{row['5s']['median_ms'] / full_5:.2f}x | {row['5s']['median_ms'] / same_5:.2f}x"
        lines.append(f"| {name} | {' | '.join(cells)} | {ratios} |")
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
            f"60 s clip in {render['clip_60s_seconds']} s (HTTP {render['clip_60s_status']}, wav2vec2 on "
            f"{render['clip_60s_encoded_seconds']} s of it), cold start {render['cold_start_s']} s."
            if render["measured"]
            else f"not measured ({render['why']})."
        )
        lines += ["", "Render free tier simulated (10 % of one core, THREADS=1): " + outcome]
    return "\n".join(lines) + "\n"
