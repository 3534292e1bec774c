"""``voicecheck scan PATH... --out results.jsonl|csv``: the detector on files and folders.

Each worker process loads the graph once (one onnxruntime session) and analyses one file at a time
with ``Scanner.row``: the file is decoded, resampled and cut into the JSON route's fixed windows as
it is read, each window analysed as it completes and only its features kept, so a worker's memory
does not grow with a file's length, and each line holds what the JSON route would answer (plus
``file``, ``seconds`` and ``weights``). Lines are written as files finish, under an exclusive lock
on ``--out``; a re-run skips the files already there (keyed by resolved path). A worker that dies
is replaced; its file is retried once, then recorded as failed. ``--engine ray`` replaces only the
worker processes (service/cli/scan_ray.py, imported only then): rows, resume, the lock and the summary
are this module's.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TextIO

import numpy as np

from service.detector import AnalysisOptions, Detector
from service.detector.artifacts import Artifacts, ArtifactsError
from service.detector.audio import AudioLimits, quiet_decoder_notes
from service.detector.errors import AudioError
from service.detector.malloc import limit_fragmentation
from service.detector.scoring import report as metrics_report
from service.detector.windows import DEFAULT_WINDOW_SECONDS, WINDOW_SECONDS_RANGE, Detection
from service.labels import AI, LABELS, read_labels
from service.web.contract import canonical_language, error_body, success_body
from service.web.errors import ClientError
from service.web.settings import DEFAULT_LANGUAGES

AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg")
OUT_SUFFIXES = (".jsonl", ".csv")
CSV_COLUMNS = (
    "file",
    "status",
    "language",
    "classification",
    "confidenceScore",
    "explanation",
    "votes",
    "segments",
    "seconds",
    "weights",
    "message",
)
SUMMARY_FIELDS = ("file", "status", "classification", "confidenceScore", "seconds", "message")
MAX_SECONDS = 3600.0
RETRIES = 1  # a file whose worker died is tried once more, then recorded as failed
ENGINES = ("local", "ray")
Warn = Callable[[str], None]


class ScanError(ValueError):
    """Bad arguments: the message says what is allowed."""


@dataclass(frozen=True)
class ScanOptions:
    paths: tuple[Path, ...]
    out: Path
    workers: int = 1
    artifacts: Path = Path("artifacts")
    language: str = "English"
    threads: int = 0  # per worker; 0 = the cores shared out between the workers
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    max_seconds: float = MAX_SECONDS
    labels: Path | None = None
    progress: bool = True
    engine: str = "local"  # or "ray": service/cli/scan_ray.py
    ray_address: str | None = None  # --engine ray: the cluster to join (None: start or join a local one)
    uris: tuple[str, ...] = ()  # --engine ray: folders and files on pyarrow filesystems (s3://, gs://, ...)


@dataclass(frozen=True)
class FileOptions:
    """How every file of a scan is analysed."""

    language: str = "English"
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    max_seconds: float = MAX_SECONDS


@dataclass
class WorkerPeak:
    """A worker that analysed files on some node (--engine ray reports them): its peak RSS."""

    node: str
    pid: int
    peak_rss_mb: float = 0.0
    files: int = 0


@dataclass(frozen=True)
class ScanReport:
    scanned: int
    skipped: int
    audio_seconds: float
    wall_seconds: float
    rows: tuple[dict[str, Any], ...]  # every line of --out, old and new, with the SUMMARY_FIELDS only
    damaged: int = 0  # lines of --out skipped as unreadable
    workers: tuple[WorkerPeak, ...] = ()  # --engine ray: each actor process that answered


def file_text(path: Path | str) -> str:
    """A path as the ``file`` column holds it: its bytes as UTF-8, any byte that is not valid UTF-8
    as ``\\xNN``, so any name fits in JSONL and CSV (``os.fsencode(path).decode("utf-8",
    "backslashreplace")``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def find_audio(paths: Iterable[Path]) -> list[Path]:
    """Audio files under ``paths`` (recursively), resolved, sorted, each once."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(
                p.resolve() for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
        elif path.is_file():
            found.add(path.resolve())
        else:
            raise ScanError(f"{file_text(path)} is neither a file nor a folder")
    return sorted(found)


@dataclass(frozen=True)
class Scanner:
    """The detector on files: each file's line of the output."""

    detector: Detector

    @classmethod
    def load(cls, artifacts: Path, threads: int) -> Scanner:
        return cls(Detector.load(artifacts, threads))

    def row(self, path: str, options: FileOptions, source: BinaryIO | None = None) -> dict[str, Any]:
        """One line of the output: the JSON route's answer for the file at ``path`` (read from
        ``source`` when given: a file object holding its bytes), or the reason."""
        weights = self.detector.weights
        try:
            detection = self.analyse(path, options, source)
        except AudioError as exc:
            body: dict[str, Any] = error_body(exc.message)
        except OSError as exc:
            body = error_body(f"could not read the file: {exc.strerror or exc}")
        else:
            body = {
                **success_body(options.language, detection, weights),
                "seconds": round(detection.seconds, 3),
            }
        return {"file": file_text(path), **body, "weights": weights}

    def analyse(self, path: str, options: FileOptions, source: BinaryIO | None = None) -> Detection:
        """The JSON route's detection, one window in memory at a time."""
        limits = AudioLimits(max_seconds=options.max_seconds)
        detector = self.detector.with_options(AnalysisOptions(options.window_seconds, limits))
        return detector.analyse(path if source is None else source)


def scan(options: ScanOptions, warn: Warn | None = None) -> ScanReport:
    warn = warn or _to_stderr
    file_options, weights = _check(options)
    engine = _engine(options)
    with _Output(options.out) as output:
        _warn_before(options, weights, output.damaged, warn)
        before = [_slim(row) for row in output.rows]
        done = {_key(row["file"]) for row in before}
        found = [str(path) for path in find_audio(options.paths)] + engine.list_uris(options.uris)
        todo = [name for name in found if file_text(name) not in done]
        started = time.perf_counter()
        progress = Progress(len(todo), sys.stderr if options.progress and engine.own_progress else None)
        new_rows = []
        workers: dict[tuple[str, int], WorkerPeak] = {}
        for row in engine.analysed(todo, options, file_options, progress.noting(warn)):
            _note_worker(workers, row.pop("_worker", None))
            row.setdefault("weights", weights)  # a dead worker's row is the parent's
            output.write(row)
            progress.update(row)
            new_rows.append(_slim(row))
        progress.close()
    wall = time.perf_counter() - started
    audio = sum(float(row.get("seconds") or 0) for row in new_rows)
    return ScanReport(
        len(todo), len(done), audio, wall, tuple(before + new_rows), output.damaged, tuple(workers.values())
    )


class Engine(Protocol):
    """How the files' rows are made: worker processes here, or an actor pool (service/cli/scan_ray.py)."""

    own_progress: bool  # False: the engine shows its own progress

    def list_uris(self, uris: Iterable[str]) -> list[str]: ...

    def analysed(
        self, files: list[str], options: ScanOptions, file_options: FileOptions, warn: Warn
    ) -> Iterator[dict[str, Any]]: ...


class _LocalEngine:
    own_progress = True

    def list_uris(self, uris: Iterable[str]) -> list[str]:
        if uris:
            raise ScanError(f"{next(iter(uris))}: URIs need --engine ray (pip install '.[cluster]')")
        return []

    def analysed(
        self, files: list[str], options: ScanOptions, file_options: FileOptions, warn: Warn
    ) -> Iterator[dict[str, Any]]:
        return _analysed(files, options, file_options, warn)


def _engine(options: ScanOptions) -> Engine:
    if options.engine == "local":
        return _LocalEngine()
    try:
        from service.cli.scan_ray import RayEngine
    except ImportError as exc:
        raise ScanError(f"--engine ray needs the cluster extra ({exc}): pip install '.[cluster]'") from None
    return RayEngine()


def _note_worker(workers: dict[tuple[str, int], WorkerPeak], worker: dict[str, Any] | None) -> None:
    if worker is None:
        return
    peak = workers.setdefault((worker["node"], worker["pid"]), WorkerPeak(worker["node"], worker["pid"]))
    peak.peak_rss_mb = max(peak.peak_rss_mb, worker["peak_rss_mb"])
    peak.files += 1


def _warn_before(options: ScanOptions, weights: str, damaged: int, warn: Warn) -> None:
    if weights == "random-init":
        warn(
            f"RANDOM WEIGHTS: the graph in {file_text(options.artifacts)} was exported with "
            '--random-init; its verdicts are not meaningful (every line says "weights": "random-init")'
        )
    if damaged:
        warn(
            f"{file_text(options.out)}: skipped {damaged} damaged line(s) (not UTF-8, not a row, or "
            "wrong field types); files with no other line are scanned again"
        )


def read_rows(out: Path) -> list[dict[str, Any]]:
    """The readable lines already in ``out`` (damaged ones, such as the half-written last line of
    an interrupted run, are left out)."""
    if not out.exists():
        return []
    with out.open("rb") as handle:
        return _parse_rows(handle, out.suffix == ".csv")[0]


def _to_stderr(message: str) -> None:
    print(f"voicecheck scan: {message}", file=sys.stderr, flush=True)


def is_uri(name: str) -> bool:
    """``s3://bucket/key``, ``file:///path``...: a file the Ray engine reads through pyarrow."""
    return "://" in name


def _key(file: str) -> str:
    """Where a line's file is: its text resolved (lines of older runs may hold relative paths), or
    its URI."""
    if is_uri(file):
        return file
    try:
        return file_text(Path(file).resolve())
    except (OSError, ValueError, RuntimeError):
        return file


def _slim(row: dict[str, Any]) -> dict[str, Any]:
    """What the summary and the metrics need: an archive's report stays small in memory."""
    return {key: row[key] for key in SUMMARY_FIELDS if key in row}


def _check(options: ScanOptions) -> tuple[FileOptions, str]:
    """Every argument, before any work (a ScanError says what is allowed); the file options and
    where the weights came from."""
    if options.out.suffix not in OUT_SUFFIXES:
        raise ScanError(f"--out must end in {' or '.join(OUT_SUFFIXES)}, not {file_text(options.out.name)!r}")
    if options.out.is_dir():
        raise ScanError(
            f"--out {file_text(options.out)} is a folder; give a file name ending in .jsonl or .csv"
        )
    if options.engine not in ENGINES:
        raise ScanError(f"--engine must be {' or '.join(ENGINES)}, not {options.engine!r}")
    if options.ray_address is not None and options.engine != "ray":
        raise ScanError("--ray-address needs --engine ray")
    if not 1 <= options.workers <= 64:
        raise ScanError("--workers must be 1-64")
    if not 0 <= options.threads <= 64:
        raise ScanError("--threads must be 0-64 (0: the cores shared out between the workers)")
    if not WINDOW_SECONDS_RANGE[0] <= options.window_seconds <= WINDOW_SECONDS_RANGE[1]:
        raise ScanError(f"--window-seconds must be {WINDOW_SECONDS_RANGE[0]:g}-{WINDOW_SECONDS_RANGE[1]:g}")
    if not 1.0 <= options.max_seconds <= MAX_SECONDS:
        raise ScanError(f"--max-seconds must be 1-{MAX_SECONDS:g}")
    if options.labels is not None and (options.labels.name != "labels.csv" or not options.labels.is_file()):
        raise ScanError("--labels must be an existing labels.csv (columns path,label,...) next to its audio")
    try:
        language = canonical_language(options.language, DEFAULT_LANGUAGES)
        manifest, _ = Artifacts(options.artifacts).load()
    except ClientError as exc:
        raise ScanError(f"--language: {exc.message}") from None
    except ArtifactsError as exc:
        raise ScanError(_artifacts_help(options.artifacts, exc)) from None
    return FileOptions(language, options.window_seconds, options.max_seconds), manifest.source.kind


def _artifacts_help(folder: Path, exc: ArtifactsError) -> str:
    if not Artifacts(folder).graph.exists():
        return (
            f"no model.onnx in {file_text(folder.resolve())}: pass --artifacts DIR (the folder export "
            "wrote) or set ARTIFACTS_DIR; to make one: voicecheck export --out DIR"
        )
    return f"{exc}; or pass --artifacts DIR"


class _Output:
    """``--out``, exclusively locked for the whole scan: the lines already there, then one line
    per file, appended and flushed as it comes (an interrupted scan resumes where it stopped)."""

    def __init__(self, out: Path) -> None:
        self._out = out
        self._handle: BinaryIO | None = None
        self._columns: tuple[str, ...] = CSV_COLUMNS
        self.rows: list[dict[str, Any]] = []
        self.damaged = 0

    def __enter__(self) -> _Output:
        try:
            self._out.parent.mkdir(parents=True, exist_ok=True)
            handle = self._handle = self._out.open("a+b")
        except OSError as exc:
            reason = "part of its folder is a file" if isinstance(exc, FileExistsError) else exc.strerror
            raise ScanError(f"cannot write --out {file_text(self._out)}: {reason or exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ScanError(
                f"another scan is writing to {file_text(self._out)}; "
                "wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        self.rows, self.damaged = _parse_rows(handle, self._csv)
        if self._csv:
            self._columns = self._header(handle)
        self._start_line(handle)
        return self

    @property
    def _csv(self) -> bool:
        return self._out.suffix == ".csv"

    def _header(self, handle: BinaryIO) -> tuple[str, ...]:
        """The columns of an existing CSV (an older version's may lack some), or CSV_COLUMNS."""
        handle.seek(0)
        first = handle.readline().decode("utf-8", "replace")
        if not first.strip():
            return CSV_COLUMNS
        columns = tuple(next(csv.reader([first])))
        if not {"file", "status"} <= set(columns):
            handle.close()
            raise ScanError(
                f"--out {file_text(self._out)} is a CSV without the scan's columns: choose another --out"
            )
        return columns

    def _start_line(self, handle: BinaryIO) -> None:
        size = handle.seek(0, os.SEEK_END)
        if size == 0 and self._csv:
            self._put(self._csv_line({column: column for column in self._columns}))
        elif size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                self._put("\n")  # an interrupted run left half a line: start a new one

    def write(self, row: dict[str, Any]) -> None:
        if self._csv:
            self._put(
                self._csv_line({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
            )
        else:
            self._put(json.dumps(row) + "\n")

    def _csv_line(self, row: dict[str, Any]) -> str:
        text = io.StringIO()
        csv.DictWriter(text, self._columns, extrasaction="ignore", lineterminator="\n").writerow(row)
        return text.getvalue()

    def _put(self, text: str) -> None:
        assert self._handle is not None
        self._handle.write(text.encode())
        self._handle.flush()

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()  # also releases the lock


def _parse_rows(handle: BinaryIO, is_csv: bool) -> tuple[list[dict[str, Any]], int]:
    """The well-formed rows of an output file, and how many lines were not."""
    lines = (line.decode("utf-8", "surrogateescape") for line in handle)
    parsed: Iterator[Any] = (
        csv.DictReader(lines) if is_csv else (_json(line) for line in lines if line.strip())
    )
    rows: list[dict[str, Any]] = []
    damaged = 0
    for row in parsed:
        if _well_formed(row, is_csv):
            rows.append(row)
        else:
            damaged += 1
    return rows, damaged


def _json(line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _well_formed(row: Any, is_csv: bool) -> bool:
    if not isinstance(row, dict) or None in row:  # csv's restkey: more fields than columns
        return False
    if not all(_text(row.get(name)) for name in ("file", "status")) or "\0" in row["file"]:
        return False
    if row["status"] == "error":
        return _text(row.get("message"))
    if row["status"] != "success" or row.get("classification") not in LABELS:
        return False
    return _number(row.get("confidenceScore"), is_csv) and _number(row.get("seconds"), is_csv)


def _text(value: Any) -> bool:
    """A non-empty string that is valid UTF-8 (no surrogate escapes of undecodable bytes)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _number(value: Any, is_csv: bool) -> bool:
    if is_csv and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---- worker processes ----


@dataclass
class _Worker:
    """One worker process, its end of the pipe, and the file it is analysing."""

    process: BaseProcess
    connection: Connection
    path: str | None = None

    @classmethod
    def start(cls, context: Any, artifacts: Path, threads: int, options: FileOptions) -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(target=_work, args=(theirs, artifacts, threads, options), daemon=True)
        process.start()
        theirs.close()
        return cls(process, ours)

    def give(self, path: str) -> None:
        self.path = path
        self.connection.send(path)

    def answer(self, ready: list[Any]) -> dict[str, Any] | None:
        """Its row if it has answered; None while it works. Raises EOFError if it died."""
        if self.connection.poll():
            row: dict[str, Any] = self.connection.recv()  # EOFError: it died before answering
            if "load_error" in row:
                raise ScanError(f"a worker could not load the model: {row['load_error']}")
            self.path = None
            return row
        if self.process.sentinel in ready:
            raise EOFError
        return None

    def stop(self) -> None:
        if self.path is None and self.process.is_alive():
            with contextlib.suppress(OSError):
                self.connection.send(None)  # done: let it exit on its own
            self.process.join(5)
        self.connection.close()
        self.process.terminate()
        self.process.join(5)


def _work(connection: Connection, artifacts: Path, threads: int, options: FileOptions) -> None:
    """A worker's life: load the graph once, then analyse each path it is sent until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    limit_fragmentation()
    quiet_decoder_notes()
    try:
        scanner = Scanner.load(artifacts, threads)
    except Exception as exc:  # a graph onnxruntime refuses: say so once, in the parent
        connection.send({"load_error": str(exc)[:300]})
        return
    try:
        while (path := connection.recv()) is not None:
            connection.send(scanner.row(path, options))
    except (EOFError, OSError):
        return  # the parent is gone


def _analysed(
    files: list[str], options: ScanOptions, file_options: FileOptions, warn: Warn
) -> Iterator[dict[str, Any]]:
    """Each file's row, in the order they finish, from ``options.workers`` processes."""
    if not files:
        return
    threads = options.threads or max(1, (os.cpu_count() or 1) // options.workers)
    context = multiprocessing.get_context("spawn")

    def start() -> _Worker:
        return _Worker.start(context, options.artifacts, threads, file_options)

    queue = deque(files)
    deaths: Counter[str] = Counter()
    workers = [start() for _ in range(min(options.workers, len(files)))]
    try:
        while True:
            for worker in workers:
                if worker.path is None and queue:
                    worker.give(queue.popleft())
            busy = [worker for worker in workers if worker.path is not None]
            if not busy:
                return
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy])
            for index, worker in enumerate(workers):
                try:
                    row = worker.answer(ready) if worker.path is not None else None
                except (EOFError, OSError):
                    row = _died(worker, deaths, queue, warn)
                    worker.stop()
                    workers[index] = start()
                if row is not None:
                    yield row
    finally:
        for worker in workers:
            worker.stop()


def _died(worker: _Worker, deaths: Counter[str], queue: deque[str], warn: Warn) -> dict[str, Any] | None:
    """Retry the dead worker's file once; the second time, its failed row."""
    assert worker.path is not None
    worker.process.join(5)
    code = worker.process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    name = file_text(worker.path)
    deaths[worker.path] += 1
    if deaths[worker.path] <= RETRIES:
        warn(
            f"the worker analysing {name} died ({how}; the out-of-memory killer sends SIGKILL); "
            "retrying it once"
        )
        queue.appendleft(worker.path)
        return None
    warn(f"the worker analysing {name} died again ({how}); recorded as failed")
    message = f"not analysed: the worker process died twice on this file ({how}; out of memory?)"
    return {"file": name, **error_body(message)}


class Progress:
    """A one-line progress bar on stderr: files, failures, audio seconds per wall second."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream = total, stream
        self.done = self.failed = 0
        self.audio = 0.0
        self.started = time.perf_counter()

    def update(self, row: dict[str, Any]) -> None:
        self.done += 1
        self.failed += row["status"] != "success"
        self.audio += float(row.get("seconds") or 0)
        if self.stream is None:
            return
        filled = self.WIDTH * self.done // max(1, self.total)
        rate = self.audio / max(1e-9, time.perf_counter() - self.started)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} files, {self.failed} failed, {rate:.1f} audio-s/s"
        )
        self.stream.flush()

    def noting(self, warn: Warn) -> Warn:
        """``warn``, on a line of its own below the bar."""

        def note(message: str) -> None:
            if self.stream is not None and self.done:
                self.stream.write("\n")
            warn(message)

        return note

    def close(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")


def summary_table(report: ScanReport, max_failures: int = 20) -> str:
    """Counts by class, then failures grouped by reason."""
    classes = Counter(row.get("classification") or "failed" for row in report.rows)
    lines = [
        f"scanned {report.scanned} files ({report.skipped} already in the output) "
        f"in {report.wall_seconds:.1f} s: "
        f"{report.audio_seconds:.1f} s of audio, {report.audio_seconds / max(report.wall_seconds, 1e-9):.1f} "
        "audio-s per wall-s",
        "",
        f"{'class':<14} {'files':>7}",
    ]
    lines += [f"{name:<14} {classes.get(name, 0):>7}" for name in (*LABELS, "failed")]
    if report.workers:
        peaks = [worker.peak_rss_mb for worker in report.workers]
        lines += [
            "",
            f"{len(report.workers)} actor process(es) on {len({w.node for w in report.workers})} node(s), "
            f"peak RSS {min(peaks):.0f}-{max(peaks):.0f} MB per actor",
        ]
    failures = [row for row in report.rows if row.get("status") != "success"]
    reasons = Counter(str(row.get("message")) for row in failures)
    if reasons:
        lines += ["", "failures by reason:"]
        lines += [f"{count:>7}  {reason}" for reason, count in reasons.most_common()]
        lines += ["", "failed files:"] + [
            f"  {row['file']}: {row.get('message')}" for row in failures[:max_failures]
        ]
        if len(failures) > max_failures:
            lines.append(f"  ... and {len(failures) - max_failures} more (see the output file)")
    return "\n".join(lines)


def label_metrics(report: ScanReport, labels: Path) -> dict[str, Any]:
    """The evaluation metrics of ``voicecheck evaluate`` for the scanned files that ``labels`` lists."""
    if labels.name != "labels.csv":
        raise ScanError(
            "--labels must be a labels.csv (columns path,label,group, optionally "
            "language,family,channel) next to its audio"
        )
    clips = {str(clip.path.resolve()): clip for clip in read_labels(labels.parent)}
    matched = [
        (clip, row)
        for row in report.rows
        if row.get("status") == "success"
        and (clip := clips.get(str(Path(row["file"]).resolve()))) is not None
    ]
    if not matched:
        raise ScanError(f"none of the files {labels} lists was scanned successfully")
    is_ai = np.array([clip.label == AI for clip, _ in matched])
    predicted = np.array([row["classification"] == AI for _, row in matched])
    confidence = np.array([float(row["confidenceScore"]) for _, row in matched])
    ai_probability = np.where(predicted, confidence, 1.0 - confidence)
    result = metrics_report(is_ai, ai_probability, predicted, [clip.group for clip, _ in matched])
    return {"labelled_files": len(clips), **result}


def metrics_table(metrics: dict[str, Any]) -> str:
    keys = ("clips", "accuracy", "balanced_accuracy", "roc_auc", "eer", "ece", "tiered_score")
    lines = [f"evaluation ({metrics['clips']} of {metrics['labelled_files']} labelled files scanned):"]
    lines += [f"  {key:<18} {metrics[key]:.3f}" for key in keys[1:]]
    confusion = metrics["confusion"]
    lines.append(f"  confusion (rows: truth): {json.dumps(confusion)}")
    return "\n".join(lines)
