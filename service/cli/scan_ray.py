"""``voicecheck scan --engine ray``: the scan's per-file step on a Ray cluster (the ``cluster`` extra).

Ray Data reads the files (local paths, or URIs of any filesystem pyarrow reads: s3://, gs://,
hdfs://, file://) in small blocks and streams them to a fixed pool of actors, each holding one
``Scanner`` (one onnxruntime session) for its whole life. Rows come back to the driver in the order
they finish, and service/cli/scan.py writes them: lines, resume, the lock on ``--out`` and the summary
are the local engine's. An actor that dies is restarted by Ray and its block retried once; a block
that still fails is dropped by Ray Data and its files are recorded as failed, so one bad file never
stops the job. Only ``--engine ray`` imports this module (and so ray).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow
import pyarrow.fs
import ray
import ray.data
from ray.data import ActorPoolStrategy, DataContext

from service.cli.scan import (
    AUDIO_SUFFIXES,
    RETRIES,
    FileOptions,
    ScanError,
    Scanner,
    ScanOptions,
    Warn,
    file_text,
    is_uri,
)
from service.detector.audio import quiet_decoder_notes
from service.detector.malloc import limit_fragmentation
from service.web.contract import error_body

MAX_READ_TASKS = 10_000  # files are read one per block up to this many, then a few per block
CONNECT_SECONDS = 10.0  # --ray-address must take a connection within this
ACTORS_START_SECONDS = 600  # on this machine's Ray, the pool waits for all its actors (graphs loaded)
TASKS_IN_FLIGHT_PER_ACTOR = 2  # blocks queued at an actor: one analysed, one ready
SCHEMES = "the Ray engine reads local paths and s3://, gs://, hdfs:// or file:// URIs"
NOT_ANALYSED = (
    "not analysed on Ray: the file could not be read (gone since it was listed?), or the actor "
    f"analysing it died {RETRIES + 1} times (out of memory?); the Ray logs say which"
)


class RayEngine:
    own_progress = False  # Ray Data shows its own

    def list_uris(self, uris: Iterable[str]) -> list[str]:
        return list_uris(uris)

    def analysed(
        self, files: list[str], options: ScanOptions, file_options: FileOptions, warn: Warn
    ) -> Iterator[dict[str, Any]]:
        return analysed(files, options, file_options, warn)


def list_uris(uris: Iterable[str]) -> list[str]:
    """The audio files at or under each URI (recursively), as URIs, sorted, each once."""
    found: set[str] = set()
    for uri in uris:
        try:
            filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
            info = filesystem.get_file_info(path)
            prefix = _prefix(uri, path)
            if info.type == pyarrow.fs.FileType.Directory:
                selector = pyarrow.fs.FileSelector(path, recursive=True)
                found.update(
                    prefix + child.path
                    for child in filesystem.get_file_info(selector)
                    if child.type == pyarrow.fs.FileType.File and child.path.lower().endswith(AUDIO_SUFFIXES)
                )
            elif info.type == pyarrow.fs.FileType.File:
                found.add(prefix + info.path)
            else:
                raise ScanError(f"{uri} is neither a file nor a folder")
        except (pyarrow.ArrowException, OSError, ValueError) as exc:
            if isinstance(exc, ScanError):
                raise
            raise ScanError(f"cannot list {uri}: {_first_line(exc)}") from None
    return sorted(found)


def _prefix(uri: str, path: str) -> str:
    """What goes before a filesystem path to make its URI: ``s3://`` (the bucket is in the path),
    ``hdfs://host:port``, ``file://``."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://" + ("" if path.startswith(parts.netloc) else parts.netloc)


def analysed(
    files: list[str], options: ScanOptions, file_options: FileOptions, warn: Warn
) -> Iterator[dict[str, Any]]:
    """Each file's row, in the order they finish, from ``options.workers`` actors."""
    if not files:
        return
    names = _fs_paths(files)
    readable = [name for name in files if _utf8(name)]
    for name in files:
        if not _utf8(name):
            yield {
                "file": file_text(name),
                **error_body("not analysed: the Ray engine reads UTF-8 file names only; use --engine local"),
            }
    if not readable:
        return
    with _ray(options, warn):
        seen: set[str] = set()
        for record in _dataset(readable, options, file_options).iter_rows():
            listed, row = _answer(record, names)
            if listed not in seen:  # always: Ray returns each block once, retried or not
                seen.add(listed)
                yield row
        for listed in readable:
            if listed not in seen:
                yield {"file": file_text(listed), **error_body(NOT_ANALYSED)}


def _answer(record: dict[str, Any], names: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """An actor's answer: the file as listed, and its row (with the actor, for the summary)."""
    row = json.loads(record["row"])
    if "load_error" in row:
        raise ScanError(f"an actor could not load the model: {row['load_error']}")
    listed = names.get(row["file"])
    if listed is None:
        raise ScanError(f"Ray read {row['file']}, which is none of the files listed: {SCHEMES}")
    row["file"] = file_text(listed)
    row["_worker"] = {
        "node": str(record["node"]),
        "pid": int(record["pid"]),
        "peak_rss_mb": float(record["peak_rss_mb"]),
    }
    return listed, row


def _utf8(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _fs_paths(files: list[str]) -> dict[str, str]:
    """Each file by the path Ray Data reports for it (a URI loses its scheme: ``bucket/key``)."""
    names: dict[str, str] = {}
    for name in files:
        path = _strip_prefix(name) if is_uri(name) else name
        if names.setdefault(path, name) != name:
            raise ScanError(f"{names[path]} and {name} are the same path on two filesystems: scan them apart")
    return names


def _strip_prefix(uri: str) -> str:
    parts = urlsplit(uri)
    rest = uri[len(parts.scheme) + 3 :]
    if parts.scheme in ("s3", "gs", "gcs"):  # pyarrow keeps the bucket in the path
        return rest
    return rest[len(parts.netloc) :]


@contextlib.contextmanager
def _ray(options: ScanOptions, warn: Warn) -> Iterator[None]:
    """Ray for the scan: the cluster at ``--ray-address``, else a running one, else a local one
    started here (and stopped after)."""
    _check_reachable(options.ray_address or os.environ.get("RAY_ADDRESS"))
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=options.ray_address, logging_level=logging.WARNING)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError: all one line here
            raise ScanError(
                f"cannot start or join Ray at {options.ray_address or 'local'}: {_first_line(exc)}"
            ) from None
    try:
        own_cluster = not _joined(options)
        _check_resources(options, warn, own_cluster)
        context = DataContext.get_current()
        names = (
            "enable_progress_bars",
            "print_on_execution_start",
            "max_errored_blocks",
            "wait_for_min_actors_s",
        )
        before = {name: getattr(context, name) for name in names}
        context.enable_progress_bars = options.progress
        context.print_on_execution_start = options.progress
        context.max_errored_blocks = -1  # a block that fails for good: its files are recorded as failed
        if own_cluster:  # every actor fits (checked above): share the files out from the first one
            context.wait_for_min_actors_s = ACTORS_START_SECONDS
        ray_data_log = logging.getLogger("ray.data")
        level = ray_data_log.level
        if not options.progress:
            ray_data_log.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for name, value in before.items():
                setattr(context, name, value)
            ray_data_log.setLevel(level)
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) that takes no connection, said at once: ray.init
    would retry it for minutes."""
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or "/" in host:
        return  # none, "auto", "local": ray.init's own rules
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        raise ScanError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


def _joined(options: ScanOptions) -> bool:
    """Whether the scan runs on a cluster named by --ray-address or $RAY_ADDRESS (``ray job submit``
    sets it), which an autoscaler may grow, rather than on a Ray of this machine."""
    return bool(options.ray_address or os.environ.get("RAY_ADDRESS"))


def _check_resources(options: ScanOptions, warn: Warn, own_cluster: bool) -> None:
    wanted = options.workers * _threads(options)
    have = ray.cluster_resources().get("CPU", 0)
    if wanted <= have:
        return
    text = (
        f"--workers {options.workers} x --threads {_threads(options)} needs {wanted} CPUs; Ray has {have:g}"
    )
    if own_cluster:
        raise ScanError(f"{text}: ask for fewer")
    warn(f"{text}: the actors that do not fit wait for the cluster's autoscaler")


def _threads(options: ScanOptions) -> int:
    return options.threads or 1


def _dataset(files: list[str], options: ScanOptions, file_options: FileOptions) -> ray.data.Dataset:
    reads = [read for group in _by_filesystem(files) if (read := _read(group, options)) is not None]
    if not reads:
        return ray.data.from_items([])
    dataset = reads[0].union(*reads[1:]) if len(reads) > 1 else reads[0]
    with warnings.catch_warnings():
        # max_task_retries has no named parameter yet (Ray 2.60-2.63 warn; hence the extra's <2.64)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return dataset.map_batches(
            _Analyst,
            batch_size=1,
            batch_format="numpy",
            compute=ActorPoolStrategy(
                size=options.workers, max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT_PER_ACTOR
            ),
            num_cpus=_threads(options),
            fn_constructor_kwargs={
                "artifacts": str(options.artifacts.resolve()),
                "threads": _threads(options),
                "options": file_options,
            },
            max_task_retries=RETRIES,
        )


def _read(files: list[str], options: ScanOptions) -> ray.data.Dataset | None:
    """The files' bytes, one file per block; None when every one is gone since the listing."""
    try:
        return ray.data.read_binary_files(
            files,
            include_paths=True,
            ignore_missing_paths=True,  # a file gone since the listing: recorded as not analysed
            num_cpus=0,  # reading waits on I/O; the CPUs are the actors'
            concurrency=max(2, options.workers),
            override_num_blocks=min(len(files), MAX_READ_TASKS),
        )
    except ValueError:  # "No files found"
        return None


def _by_filesystem(files: list[str]) -> list[list[str]]:
    """Files by where they are (local, or a URI's scheme and host): one read per filesystem."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in files:
        parts = urlsplit(name) if is_uri(name) else None
        key = (parts.scheme, parts.netloc) if parts else ("", "")
        groups.setdefault(key, []).append(name)
    return list(groups.values())


class _Analyst:
    """An actor of the pool: one Scanner, loaded once; one row (as JSON) per file."""

    def __init__(self, artifacts: str, threads: int, options: FileOptions) -> None:
        limit_fragmentation()
        quiet_decoder_notes()
        self.options = options
        self.node = ray.get_runtime_context().get_node_id()
        self.load_error = ""
        try:
            self.scanner: Scanner | None = Scanner.load(Path(artifacts), threads)
        except Exception as exc:  # reported once, by the driver
            self.scanner = None
            self.load_error = f"{str(exc)[:300]} (on node {self.node}, artifacts {artifacts})"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self._row(str(path), data) for path, data in zip(batch["path"], batch["bytes"], strict=True)]
        count = len(rows)
        return {
            "row": np.array([json.dumps(row) for row in rows], dtype=object),
            "node": np.array([self.node] * count, dtype=object),
            "pid": np.full(count, os.getpid()),
            "peak_rss_mb": np.full(count, _peak_rss_mb()),
        }

    def _row(self, path: str, data: bytes) -> dict[str, Any]:
        if self.scanner is None:
            return {"file": path, "load_error": self.load_error}
        return self.scanner.row(path, self.options, io.BytesIO(data))


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), 0 where /proc does not say."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
