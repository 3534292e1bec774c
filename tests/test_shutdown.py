"""SIGTERM lets the request in flight finish, then the process exits cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from service.settings import DEFAULT_WINDOW_SECONDS
from tests.conftest import API_KEY, encode, payload, speech

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    return False


def in_flight(url: str) -> int:
    for line in httpx.get(f"{url}/metrics", timeout=2).text.splitlines():
        if line.startswith("voicecheck_in_flight "):
            return int(line.split()[1]) - 1  # not counting this /metrics request
    return 0


def test_sigterm_finishes_the_request_in_flight(tiny_artifacts: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "API_KEY": API_KEY,
        "ARTIFACTS_DIR": str(tiny_artifacts),
        "PORT": str(port),
        "THREADS": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200)
        body = payload(encode(np.tile(speech(10.0, seed=9), 30), 16_000, "FLAC"), fmt="flac")
        result: dict[str, httpx.Response] = {}
        worker = threading.Thread(
            target=lambda: result.setdefault(
                "response",
                httpx.post(
                    f"{url}/api/voice-detection", json=body, headers={"x-api-key": API_KEY}, timeout=60
                ),
            )
        )
        worker.start()
        assert wait_until(lambda: in_flight(url) >= 1), "the long request never started"
        server.send_signal(signal.SIGTERM)
        worker.join(60)
        response = result["response"]
        assert response.status_code == 200
        assert response.json()["status"] == "success"
        assert len(response.json()["segments"]) == 300 / DEFAULT_WINDOW_SECONDS
        _, log = server.communicate(timeout=30)
        # uvicorn re-raises the signal once it has shut down, as process managers expect
        assert server.returncode in (0, -signal.SIGTERM)
        assert "Waiting for application shutdown" in log
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
