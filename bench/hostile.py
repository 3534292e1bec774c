"""The hardening issue's eight hostile cases against a live service: what each gets (status, time)
and the server's peak RSS after it. Writes bench/hostile.json."""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import API_KEY, bench_server, memory_kb, mp3_body, speech
from service.audio import quiet_decoder_notes
from tests.live import ROOT

POST_HEAD = (
    "POST /api/voice-detection HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    f"x-api-key: {API_KEY}\r\n"
)


def exchange(port: int, data: bytes, *, then: Callable[[], None] | None = None) -> tuple[str, float]:
    """Send ``data``, read until the server closes; the first status line and the seconds it took."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        started = time.perf_counter()
        sock.sendall(data)
        if then is not None:
            then()
        received = sock.recv(65536)
        seconds = time.perf_counter() - started  # to the answer; the connection may stay open
        sock.settimeout(1.0)
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                received += chunk
    statuses = [line.split()[1] for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    return "+".join(s.decode() for s in statuses) or "closed", seconds


def stalled_uploads_then_valid(port: int, url: str) -> tuple[str, float]:
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(9)]
    for sock in stalled:
        sock.sendall((POST_HEAD + "Content-Length: 1000\r\n\r\n").encode() + b'{"a')
    time.sleep(0.2)
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/api/voice-detection",
        content=mp3_body(2.0),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
        timeout=60,
    )
    valid = time.perf_counter() - started
    answers = []
    for sock in stalled:
        answers.append(sock.recv(200).split(b" ")[1].decode())
        sock.close()
    return (
        f"valid {response.status_code} in {valid:.2f} s; stalled: {set(answers)}",
        time.perf_counter() - started,
    )


def cases(port: int, url: str) -> dict[str, Callable[[], tuple[str, float]]]:
    padding = b'{"pad":[' + b"{}," * 8_700_000 + b"{}]}"
    smuggling = (POST_HEAD + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode()
    return {
        "1 nine stalled uploads, then a valid 2 s request": lambda: stalled_uploads_then_valid(port, url),
        "2 25 MiB of nested empty objects": lambda: exchange(
            port, (POST_HEAD + f"Content-Length: {len(padding)}\r\n\r\n").encode() + padding
        ),
        "3 Content-Length and chunked, then a smuggled GET": lambda: exchange(
            port, smuggling + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        "4 trailing slash with a foreign Host": lambda: exchange(
            port, b"GET /health/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        ),
        "6 malformed request line": lambda: exchange(port, b"NOT A REQUEST\r\n\r\n"),
        "6 headers over 16 KiB": lambda: exchange(
            port, b"GET /health HTTP/1.1\r\nHost: x\r\nx: " + b"a" * 20_000 + b"\r\n\r\n"
        ),
        "7 an AIFF file": lambda: exchange(port, audio_request("AIFF")),
        "8 a constant DC offset": lambda: exchange(port, audio_request("WAV", dc=True)),
    }


def audio_request(fmt: str, dc: bool = False) -> bytes:
    clip = np.full(32_000, 0.3, dtype=np.float32) if dc else speech(2.0)
    buffer = io.BytesIO()
    sf.write(buffer, clip, 16_000, format=fmt, subtype="PCM_16")
    body = json.dumps(
        {
            "language": "English",
            "audioFormat": "wav",
            "audioBase64": base64.b64encode(buffer.getvalue()).decode(),
        }
    ).encode()
    return (POST_HEAD + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def shutdown_with_stalled_upload(artifacts: Path, threads: int) -> dict[str, object]:
    def terminate_soon() -> None:
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)

    with bench_server(artifacts, threads) as server:
        status, seconds = exchange(
            server.port,
            (POST_HEAD + "Content-Length: 1000\r\n\r\n").encode() + b'{"a',
            then=terminate_soon,
        )
        server.process.wait(30)
        return {"answer": status, "seconds": round(seconds, 2), "exit_code": server.process.returncode}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python bench/hostile.py", description=__doc__)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "hostile.json")
    args = parser.parse_args()
    quiet_decoder_notes()
    results: dict[str, object] = {}
    with bench_server(args.artifacts, args.threads) as server:
        for name, run in cases(server.port, server.url).items():
            answer, seconds = run()
            peak = memory_kb(server.process.pid, "VmHWM") / 1024
            results[name] = {"answer": answer, "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1)}
            print(f"{name:52} {answer:40} {seconds:6.2f} s  peak RSS {peak:.0f} MB", flush=True)
    results["5 SIGTERM with a stalled upload"] = shutdown_with_stalled_upload(args.artifacts, args.threads)
    print(f"{'5 SIGTERM with a stalled upload':52} {results['5 SIGTERM with a stalled upload']}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
