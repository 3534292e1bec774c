"""SIGTERM lets the request in flight finish, then the process exits cleanly."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import numpy as np

from service.detector.windows import DEFAULT_WINDOW_SECONDS
from tests.conftest import API_KEY, encode, payload, speech
from tests.live import live_server, wait_until


def queued(url: str) -> int:
    """Requests whose body has arrived: waiting for, or in, an analysis."""
    for line in httpx.get(f"{url}/metrics", timeout=2).text.splitlines():
        if line.startswith("voicecheck_queued "):
            return int(line.split()[1])
    return 0


def test_sigterm_finishes_the_request_in_flight(tiny_artifacts: Path) -> None:
    with live_server(tiny_artifacts, API_KEY) as server:
        body = payload(encode(np.tile(speech(10.0, seed=9), 30), 16_000, "FLAC"), fmt="flac")
        result: dict[str, httpx.Response] = {}
        worker = threading.Thread(
            target=lambda: result.setdefault(
                "response",
                httpx.post(
                    f"{server.url}/api/voice-detection", json=body, headers={"x-api-key": API_KEY}, timeout=60
                ),
            )
        )
        worker.start()
        assert wait_until(lambda: queued(server.url) >= 1), "the long request never started"
        server.process.send_signal(signal.SIGTERM)
        worker.join(60)
        response = result["response"]
        assert response.status_code == 200
        assert response.json()["status"] == "success"
        assert len(response.json()["segments"]) == 300 / DEFAULT_WINDOW_SECONDS
        log = server.stop()
        # uvicorn re-raises the signal once it has shut down, as process managers expect
        assert server.process.returncode in (0, -signal.SIGTERM)
        assert "Waiting for application shutdown" in log
