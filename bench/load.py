"""Load check: a bounded asyncio HTTP client on loopback hammers the service for a fixed time at a
fixed concurrency with a mix of valid and invalid requests, then reports status counts, 5xx, latency
percentiles of the valid ones and the server's peak RSS. Exits non-zero on any 5xx."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import API_KEY, ROOT, memory_kb, mp3_body, service, summary
from service.audio import quiet_decoder_notes

HEADERS = {"x-api-key": API_KEY, "content-type": "application/json"}


def request_mix() -> list[tuple[str, bytes, dict[str, str]]]:
    """(kind, body, headers): two valid clip lengths and six kinds of bad request."""
    junk = base64.b64encode(b"definitely not audio" * 50).decode()
    return [
        ("valid 5 s", mp3_body(5.0), HEADERS),
        ("valid 2 s", mp3_body(2.0), HEADERS),
        ("wrong key", mp3_body(2.0), {**HEADERS, "x-api-key": "nope"}),
        ("bad json", b'{"language": "English", "audioFormat"', HEADERS),
        (
            "not audio",
            json.dumps({"language": "English", "audioFormat": "mp3", "audioBase64": junk}).encode(),
            HEADERS,
        ),
        (
            "bad language",
            json.dumps({"language": "Klingon", "audioFormat": "mp3", "audioBase64": junk}).encode(),
            HEADERS,
        ),
        ("wrong type", mp3_body(2.0), {**HEADERS, "content-type": "text/plain"}),
        ("too big", b" " * (2 * 1024 * 1024), HEADERS),
    ]


async def hammer(url: str, concurrency: int, seconds: float, seed: int) -> dict[str, object]:
    mix = request_mix()
    rng = random.Random(seed)
    statuses: dict[str, dict[int, int]] = {}
    valid_ms: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            kind, body, headers = rng.choice(mix)
            start = time.perf_counter()
            response = await client.post(f"{url}/api/voice-detection", content=body, headers=headers)
            if response.status_code == 200:
                valid_ms.append(1000 * (time.perf_counter() - start))
            counts = statuses.setdefault(kind, {})
            counts[response.status_code] = counts.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    total = sum(sum(c.values()) for c in statuses.values())
    server_errors = sum(n for c in statuses.values() for code, n in c.items() if code >= 500 and code != 503)
    return {
        "requests": total,
        "server_errors_5xx": server_errors,
        "busy_503": sum(c.get(503, 0) for c in statuses.values()),
        "by_kind": {k: {str(code): n for code, n in sorted(v.items())} for k, v in sorted(statuses.items())},
        "valid_latency": summary(valid_ms) if valid_ms else {},
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python bench/load.py", description=__doc__)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "load.json")
    args = parser.parse_args()
    quiet_decoder_notes()
    with service(args.artifacts, args.threads, MAX_QUEUE="32", MAX_BODY_BYTES=str(1024 * 1024)) as (
        process,
        url,
        _,
    ):
        result = asyncio.run(hammer(url, args.concurrency, args.seconds, seed=0))
        result["peak_rss_mb"] = round(memory_kb(process.pid, "VmHWM") / 1024, 1)
    result |= {"concurrency": args.concurrency, "seconds": args.seconds}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 1 if result["server_errors_5xx"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
