"""The load generator: a bounded closed-loop asyncio HTTP client on loopback that keeps
``concurrency`` requests in flight for a fixed time. bench/run.py measures throughput with it;
run as a script, it is the load check: 16 clients for 60 s with a mix of valid and invalid
requests, then status counts, 5xx, latency percentiles of the valid ones and the server's peak RSS.
Exits non-zero on any 5xx."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DETECT, HEADERS, bench_parser, bench_server, memory_kb, mp3_body, summary
from service.detector.audio import quiet_decoder_notes
from tests.live import ROOT


class Request(NamedTuple):
    kind: str
    body: bytes
    headers: dict[str, str]


class Answer(NamedTuple):
    kind: str
    status: int
    ms: float


async def closed_loop(
    url: str, mix: Sequence[Request], concurrency: int, seconds: float, seed: int = 0
) -> tuple[list[Answer], float]:
    """``concurrency`` clients, each posting a request drawn from ``mix`` as soon as its last one
    is answered, until ``seconds`` have passed; every answer, and the wall seconds it all took."""
    rng = random.Random(seed)
    answers: list[Answer] = []
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            kind, body, headers = rng.choice(mix)
            start = time.perf_counter()
            response = await client.post(f"{url}{DETECT}", content=body, headers=headers)
            answers.append(Answer(kind, response.status_code, 1000 * (time.perf_counter() - start)))

    async with httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=concurrency)) as client:
        began = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return answers, elapsed


def throughput(url: str, body: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """The same valid request from ``concurrency`` clients: requests, answers per second, latency."""
    answers, elapsed = asyncio.run(closed_loop(url, [Request("valid", body, HEADERS)], concurrency, seconds))
    statuses = Counter(answer.status for answer in answers)
    return {
        "concurrency": concurrency,
        "requests": len(answers),
        "ok_per_second": round(statuses[200] / elapsed, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        **summary([answer.ms for answer in answers]),
    }


def request_mix() -> list[Request]:
    """Two valid clip lengths and six kinds of bad request."""
    junk = base64.b64encode(b"definitely not audio" * 50).decode()
    return [
        Request("valid 5 s", mp3_body(5.0), HEADERS),
        Request("valid 2 s", mp3_body(2.0), HEADERS),
        Request("wrong key", mp3_body(2.0), {**HEADERS, "x-api-key": "nope"}),
        Request("bad json", b'{"language": "English", "audioFormat"', HEADERS),
        Request(
            "not audio",
            json.dumps({"language": "English", "audioFormat": "mp3", "audioBase64": junk}).encode(),
            HEADERS,
        ),
        Request(
            "bad language",
            json.dumps({"language": "Klingon", "audioFormat": "mp3", "audioBase64": junk}).encode(),
            HEADERS,
        ),
        Request("wrong type", mp3_body(2.0), {**HEADERS, "content-type": "text/plain"}),
        Request("too big", b" " * (2 * 1024 * 1024), HEADERS),
    ]


def load_check(url: str, concurrency: int, seconds: float, seed: int) -> dict[str, Any]:
    """The mix from ``concurrency`` clients: statuses by kind, 5xx other than 503, valid latency."""
    answers, _ = asyncio.run(closed_loop(url, request_mix(), concurrency, seconds, seed))
    by_kind: dict[str, Counter[int]] = {}
    for answer in answers:
        by_kind.setdefault(answer.kind, Counter())[answer.status] += 1
    valid_ms = [answer.ms for answer in answers if answer.status == 200]
    return {
        "requests": len(answers),
        "server_errors_5xx": sum(answer.status >= 500 and answer.status != 503 for answer in answers),
        "busy_503": sum(answer.status == 503 for answer in answers),
        "by_kind": {k: {str(code): n for code, n in sorted(v.items())} for k, v in sorted(by_kind.items())},
        "valid_latency": summary(valid_ms) if valid_ms else {},
    }


def main() -> int:
    parser = bench_parser("load.py", __doc__, ROOT / "bench" / "load.json")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    quiet_decoder_notes()
    with bench_server(
        args.artifacts, args.threads, MAX_QUEUE="32", MAX_BODY_BYTES=str(1024 * 1024)
    ) as server:
        result = load_check(server.url, args.concurrency, args.seconds, seed=0)
        result["peak_rss_mb"] = round(memory_kb(server.process.pid, "VmHWM") / 1024, 1)
    result |= {"concurrency": args.concurrency, "seconds": args.seconds}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 1 if result["server_errors_5xx"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
