"""The stream route's hostile cases (issue #19, 3-6) against a live service: what each gets (close
codes, statuses, time) and the server's peak RSS after it. Writes bench/streams.json.

    python bench/streams.py --artifacts /tmp/stream-art

1. Deflate bomb: 4 streams, each asking for per-message deflate, send 5 s of audio (a window to
   analyse) and then 10 frames of 15 MiB of zeros (0.6 MiB on the wire when compressed).
2. Nine streams trickle 2 bytes every 4 s; meanwhile a JSON client sends 7 requests.
3. A start message whose apiKey is a lone surrogate; 4. a text frame that is not UTF-8.
Then the stream's summary against the JSON route's answer for a 2-minute MP3 (44.1 kHz, loud and
quiet stretches), sent as ``voicecheck stream`` sends it (float samples) and as 16-bit PCM; the
server runs with DEADLINE_SECONDS=600 so that wav2vec2 sees every window on both routes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import API_KEY, HEADERS, bench_parser, bench_server, memory_kb, mp3_body, speech
from export.synthetic import speech_like
from service.cli.stream_client import StreamOptions, load_pcm, play
from service.detector.audio import quiet_decoder_notes
from tests.live import ROOT

ROUTE = "/api/voice-detection/stream"
BOMB_FRAME = bytes(15 * 1024 * 1024)
BOMB_WIRE_BYTES = 4 * 10 * len(zlib.compress(BOMB_FRAME, 9))  # what the frames cost once deflated
LOG_COUNTS = "15 server log: tracebacks, voicecheck.error lines"
START = {"type": "start", "language": "English", "sampleRate": 16000, "encoding": "pcm_s16le"}


async def bomb_stream(url: str) -> dict[str, Any]:
    """One stream of the deflate bomb: its close code, and whether deflate was agreed."""
    async with connect(
        url, additional_headers={"x-api-key": API_KEY}, compression="deflate", max_size=None
    ) as ws:
        agreed = ws.response is not None and "sec-websocket-extensions" in ws.response.headers
        try:
            await ws.send(json.dumps(START))
            pcm = (speech(5.0) * 32767).astype("<i2").tobytes()
            for at in range(0, len(pcm), 32_000):
                await ws.send(pcm[at : at + 32_000])
            for _ in range(10):
                await ws.send(BOMB_FRAME)
            await ws.send(json.dumps({"type": "end"}))
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        return {"deflate_agreed": agreed, "close_code": ws.close_code}


async def deflate_bomb(url: str) -> tuple[str, float]:
    started = time.perf_counter()
    streams = await asyncio.gather(*(bomb_stream(url) for _ in range(4)))
    codes = sorted({str(s["close_code"]) for s in streams})
    agreed = sum(s["deflate_agreed"] for s in streams)
    answer = (
        f"close {'/'.join(codes)}; deflate agreed on {agreed} of 4 ({BOMB_WIRE_BYTES >> 10} KiB if deflated)"
    )
    return answer, time.perf_counter() - started


async def trickling_streams(url: str, http_url: str, seconds: float = 30.0) -> tuple[str, float]:
    """Nine streams trickling 2 bytes every 4 s; a JSON request every few seconds meanwhile."""

    async def trickle() -> int | None:
        async with connect(url, additional_headers={"x-api-key": API_KEY}) as ws:
            await ws.send(json.dumps(START))
            with contextlib.suppress(ConnectionClosed):
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    await ws.send(b"\x00\x01")
                    await asyncio.sleep(4.0)
            return ws.close_code

    async def probes() -> list[tuple[int, float]]:
        await asyncio.sleep(1.0)
        answers = []
        async with httpx.AsyncClient(timeout=60) as client:
            for _ in range(7):
                began = time.perf_counter()
                response = await client.post(
                    f"{http_url}/api/voice-detection", content=mp3_body(2.0), headers=HEADERS
                )
                answers.append((response.status_code, time.perf_counter() - began))
                await asyncio.sleep(2.0)
        return answers

    started = time.perf_counter()
    streams = [asyncio.create_task(trickle()) for _ in range(9)]
    answers = await probes()
    await asyncio.gather(*streams)
    statuses = "/".join(str(status) for status, _ in answers)
    slowest = max(seconds for _, seconds in answers)
    return f"JSON probes {statuses}; slowest {slowest:.2f} s", time.perf_counter() - started


async def close_code_of(url: str, send: Any, text: bool) -> tuple[str, float]:
    started = time.perf_counter()
    async with connect(url) as ws:
        await ws.send(send, text=text)
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
    return f"close {ws.close_code}", time.perf_counter() - started


def settle(http_url: str, seconds: float = 120.0) -> None:
    """Wait until no window or request of an earlier case is queued or analysed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = httpx.get(f"{http_url}/metrics", timeout=10).text.splitlines()
        if "voicecheck_queued 0" in lines:
            return
        time.sleep(0.2)


def parity(url: str, http_url: str, folder: Path) -> dict[str, Any]:
    """Confidence of the JSON route and of the stream (float and 16-bit samples) for one MP3."""
    parts = [speech_like(10.0, seed, seed % 2 == 0) * (0.05 if seed % 3 == 0 else 1.0) for seed in range(12)]
    clip = np.concatenate(parts)
    clip = np.interp(np.arange(len(clip) * 441 // 160) / 44_100, np.arange(len(clip)) / 16_000, clip)
    path = folder / "two-minutes.mp3"
    sf.write(path, clip, 44_100, format="MP3")
    body = {
        "language": "English",
        "audioFormat": "mp3",
        "audioBase64": base64.b64encode(path.read_bytes()).decode(),
    }
    answer = httpx.post(f"{http_url}/api/voice-detection", json=body, headers=HEADERS, timeout=600).json()
    floats, rate = load_pcm(path)
    int16 = np.round(np.clip(np.frombuffer(floats, "<f4"), -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
    results: dict[str, Any] = {"json_route": answer["confidenceScore"]}
    for name, pcm, encoding in (("stream_float", floats, "pcm_f32le"), ("stream_16_bit", int16, "pcm_s16le")):
        options = StreamOptions(url, API_KEY, speed=0, encoding=encoding)
        summary = asyncio.run(play(pcm, rate, options)).summary or {}
        results[name] = summary.get("confidenceScore")
        results[f"{name}_equals_json_route"] = {k: v for k, v in summary.items() if k != "type"} == answer
    return results


def main() -> int:
    parser = bench_parser("streams.py", __doc__, ROOT / "bench" / "streams.json")
    args = parser.parse_args()
    quiet_decoder_notes()
    results: dict[str, object] = {}
    with (
        bench_server(args.artifacts, args.threads, LOG_LEVEL="info", DEADLINE_SECONDS="600") as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        url = server.url.replace("http://", "ws://") + ROUTE
        baseline = memory_kb(server.process.pid, "VmHWM") / 1024
        results["baseline_peak_rss_mb"] = round(baseline, 1)
        cases: dict[str, Callable[[], Coroutine[Any, Any, tuple[str, float]]]] = {
            "3 deflate bomb: 4 streams x 10 frames of 15 MiB": lambda: deflate_bomb(url),
            "6 nine streams trickling 2 bytes every 4 s, 7 JSON probes": lambda: trickling_streams(
                url, server.url
            ),
            "4 apiKey a lone surrogate": lambda: close_code_of(
                url, json.dumps({**START, "apiKey": "\ud800"}), True
            ),
            "5 a text frame that is not UTF-8": lambda: close_code_of(url, b"\xff\xfe{", True),
        }
        for name, run in cases.items():
            settle(server.url)
            answer, seconds = asyncio.run(run())
            peak = memory_kb(server.process.pid, "VmHWM") / 1024
            results[name] = {"answer": answer, "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1)}
            print(f"{name:58} {answer:44} {seconds:6.2f} s  peak RSS {peak:.0f} MB", flush=True)
        results["parity: confidence for a 2-minute MP3"] = parity(url, server.url, Path(tmp))
        print(json.dumps(results["parity: confidence for a 2-minute MP3"]))
        log = server.log()
    results[LOG_COUNTS] = [
        log.count("Traceback"),
        log.count("voicecheck.error"),
    ]
    print(f"{'15 server log: tracebacks, voicecheck.error lines':58} {results[LOG_COUNTS]}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
