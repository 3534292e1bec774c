"""A real ``python -m service`` on a free loopback port: for the tests that need the HTTP server
itself, for the benchmarks (bench/), and for scripts/fuzz, which runs a command against one:

    python -m tests.live --key fuzz-key --env LOG_LEVEL=warning -- schemathesis run {url}/openapi.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    startup_seconds: float  # from starting the process to the first /health 200
    log_path: Path  # the server's stdout and stderr

    def log(self) -> str:
        """What the server has written so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> str:
        """Wait for the process to exit; its log."""
        self.process.wait(timeout)
        return self.log()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float = 30.0, every: float = 0.02) -> bool:
    """Call ``check`` until it is true (an HTTP error counts as false); False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return True
        time.sleep(every)
    return False


@contextmanager
def live_server(
    artifacts: Path,
    api_key: str,
    *,
    threads: int = 1,
    command: Sequence[str] = ("-m", "service"),
    cgroup: Path | None = None,
    env: Mapping[str, str] | None = None,
    start_seconds: float = 120.0,
) -> Iterator[LiveServer]:
    """``python COMMAND`` in the repository with this process's environment, ``api_key``,
    ``artifacts``, a free PORT, ``threads`` and ``env`` (names as the service reads them), inside
    ``cgroup`` (a cgroup v1 folder) from its first instruction when given. Yields once /health
    answers 200; at the end, terminates the server if it still runs (kills it after 10 s)."""
    port = free_port()
    environment = {
        **os.environ,
        "API_KEY": api_key,
        "ARTIFACTS_DIR": str(artifacts.resolve()),
        "PORT": str(port),
        "THREADS": str(threads),
        **(env or {}),
    }

    def enter_cgroup() -> None:
        assert cgroup is not None
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="voicecheck-live-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("ab") as log:
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, *command],
                cwd=ROOT,
                env=environment,
                stdout=log,
                stderr=log,
                preexec_fn=None if cgroup is None else enter_cgroup,
            )

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited during start-up:\n{log_path.read_text()}")
            return httpx.get(f"{url}/health", timeout=1.0).status_code == 200

        try:
            if not wait_until(healthy, start_seconds, every=0.01):
                raise RuntimeError(f"the service did not become healthy:\n{log_path.read_text()}")
            yield LiveServer(url, port, process, time.perf_counter() - started, log_path)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.live",
        description="Start the service on a free loopback port, run COMMAND ({url} in it becomes the "
        "server's address), stop the server and print its log; COMMAND's exit code.",
    )
    parser.add_argument("--artifacts", type=Path, default=Path(os.environ.get("ARTIFACTS_DIR", "artifacts")))
    parser.add_argument("--key", default=os.environ.get("API_KEY", "live-key"), help="the API key to serve")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "2")))
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service"
    )
    parser.add_argument("command", nargs="+", metavar="COMMAND")
    args = parser.parse_args(argv)
    env = {name: value for name, _, value in (item.partition("=") for item in args.env)}
    with live_server(args.artifacts, args.key, threads=args.threads, env=env) as server:
        try:
            code = subprocess.run([part.replace("{url}", server.url) for part in args.command]).returncode
        finally:
            server.process.terminate()
            if log := server.stop():
                print(f"--- the server's log ---\n{log}", end="", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
