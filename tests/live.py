"""A real ``python -m service`` on a free loopback port, for tests that need the HTTP server itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen[str]

    def stop(self, timeout: float = 30.0) -> str:
        """Wait for the process to exit; its stderr."""
        _, log = self.process.communicate(timeout=timeout)
        return log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    return False


@contextmanager
def live_server(
    artifacts: Path, command: tuple[str, ...] = ("-m", "service"), **env: str
) -> Iterator[LiveServer]:
    port = free_port()
    environment = {
        **os.environ,
        "API_KEY": API_KEY,
        "ARTIFACTS_DIR": str(artifacts),
        "PORT": str(port),
        "THREADS": "1",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, env=environment, stderr=subprocess.PIPE, text=True
    )
    server = LiveServer(f"http://127.0.0.1:{port}", port, process)
    try:
        up = wait_until(lambda: httpx.get(f"{server.url}/health", timeout=1).status_code == 200)
        assert up, "the service did not start"
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
