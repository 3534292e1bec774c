"""The hardening issue's eight hostile cases and issue 19's upload cases against a live service:
what each gets (status, time) and the server's peak RSS after it. Writes bench/hostile.json."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    API_KEY,
    HEADERS,
    bench_parser,
    bench_server,
    memory_kb,
    mp3_body,
    reset_peak_rss,
    speech,
)
from service.detector.audio import quiet_decoder_notes
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


MAX_BODY_BYTES = 25 * 1024 * 1024  # the default
BOUNDARY = "hostile-bench"
UPLOAD_HEAD = (
    "POST /api/voice-detection/file HTTP/1.1\r\nHost: x\r\n"
    f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nx-api-key: {API_KEY}\r\n"
)


def upload_body(size: int, rate: int = 44_100) -> bytes:
    """A multipart upload of ``size`` bytes: a stereo 16-bit WAV of speech (148 s at 25 MiB and
    44.1 kHz; at 16 kHz, 410 s: over MAX_AUDIO_SECONDS, refused from its header before decoding)."""
    start = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="language"\r\n\r\nEnglish\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n\r\n'
    ).encode()
    end = f"\r\n--{BOUNDARY}--\r\n".encode()
    frames = (size - len(start) - len(end) - 44) // 4
    clip = np.resize(speech(frames / rate + 1), frames)  # speech() is 16 kHz: at 44.1 kHz, higher
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([clip, clip[::-1]], axis=1), rate, format="WAV", subtype="PCM_16")
    return start + buffer.getvalue() + end


def stalled_near_limit_uploads_then_valid(port: int, url: str) -> tuple[str, float]:
    """Issue 19, 1: two uploads of MAX_BODY_BYTES send all but their last 64 bytes and stall."""
    body = upload_body(MAX_BODY_BYTES)
    head = (UPLOAD_HEAD + f"Content-Length: {len(body)}\r\n\r\n").encode()
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    for sock in stalled:
        sock.sendall(head + body[:-64])
    time.sleep(1.0)
    started = time.perf_counter()
    response = httpx.post(f"{url}/api/voice-detection", content=mp3_body(2.0), headers=HEADERS, timeout=60)
    valid = time.perf_counter() - started
    for sock in stalled:
        sock.close()
    return f"valid {response.status_code} in {valid:.2f} s", valid


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
        "19.1 two stalled near-limit uploads, then a valid 2 s request": lambda: (
            stalled_near_limit_uploads_then_valid(port, url)
        ),
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


def concurrent_large_uploads(
    artifacts: Path, threads: int, count: int = 4, rate: int = 44_100
) -> dict[str, object]:
    """Issue 19, 2: ``count`` uploads of MAX_BODY_BYTES at once, on a fresh server; its peak RSS
    while they are received and answered, and how far over its RSS before them."""
    body = upload_body(MAX_BODY_BYTES, rate)
    statuses: list[int] = []

    def send(url: str) -> None:
        response = httpx.post(
            f"{url}/api/voice-detection/file",
            content=body,
            headers={"x-api-key": API_KEY, "content-type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=120,
        )
        statuses.append(response.status_code)

    with bench_server(artifacts, threads) as server:
        baseline = memory_kb(server.process.pid, "VmRSS") / 1024
        reset_peak_rss(server.process.pid)  # loading the graph peaked higher than serving does
        senders = [threading.Thread(target=send, args=(server.url,)) for _ in range(count)]
        started = time.perf_counter()
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        peak = memory_kb(server.process.pid, "VmHWM") / 1024
    return {
        "answer": "+".join(str(status) for status in sorted(statuses)),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(peak, 1),
        "over_baseline_mb": round(peak - baseline, 1),
    }


def main() -> int:
    parser = bench_parser("hostile.py", __doc__, ROOT / "bench" / "hostile.json")
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
    for name, rate in (
        ("19.2 four 25 MiB uploads at once (148 s WAV)", 44_100),
        ("19.2 four 25 MiB uploads at once, too long to decode", 16_000),
    ):
        results[name] = concurrent_large_uploads(args.artifacts, args.threads, rate=rate)
        print(f"{name:52} {results[name]}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
