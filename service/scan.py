"""``voicecheck scan PATH... --out results.jsonl|csv``: the detector on files and folders, in-process.

Worker processes each load the artifacts once (one onnxruntime session each) and run
``Runtime.analyse`` on each file's bytes, so every line holds exactly what the JSON route would
answer (plus ``file`` and ``seconds``). Lines are written as files finish; a re-run skips the
files already in ``--out``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from service.artifacts import Artifacts, ArtifactsError
from service.contract import canonical_language, error_body, success_body
from service.errors import ClientError
from service.labels import AI, LABELS
from service.metrics import Metrics
from service.runtime import Runtime, load_runtime
from service.settings import DEFAULT_LANGUAGES, DEFAULT_WINDOW_SECONDS, Settings

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
    "weights",
    "seconds",
    "message",
)
MAX_FILE_BYTES = 1 << 30
SUMMARY_FIELDS = ("file", "status", "classification", "confidenceScore", "seconds", "message")


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
    max_seconds: float = 3600.0
    labels: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class ScanReport:
    scanned: int
    skipped: int
    audio_seconds: float
    wall_seconds: float
    rows: tuple[dict[str, Any], ...]  # every line of --out, old and new, with the SUMMARY_FIELDS only


def find_audio(paths: Iterable[Path]) -> list[Path]:
    """Audio files under ``paths`` (recursively), sorted, each once."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.is_file():
            found.add(path)
        else:
            raise ScanError(f"{path} is neither a file nor a folder")
    return sorted(found)


def read_rows(out: Path) -> list[dict[str, Any]]:
    """The lines already in ``out`` (a half-written last line, from an interrupted run, is ignored)."""
    if not out.exists():
        return []
    with out.open(newline="") as handle:
        if out.suffix == ".csv":
            return [dict(row) for row in csv.DictReader(handle) if row.get("file")]
        rows = []
        for line in handle:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return [row for row in rows if isinstance(row, dict) and "file" in row]


def scan(options: ScanOptions) -> ScanReport:
    _check(options)
    language = canonical_language(options.language, DEFAULT_LANGUAGES)
    before = [_slim(row) for row in read_rows(options.out)]
    done = {row["file"] for row in before}
    todo = [str(p) for p in find_audio(options.paths) if str(p) not in done]
    started = time.perf_counter()
    new_rows = [_slim(row) for row in _run(todo, options, language)] if todo else []
    wall = time.perf_counter() - started
    audio = sum(float(row.get("seconds") or 0) for row in new_rows)
    return ScanReport(len(todo), len(done), audio, wall, tuple(before + new_rows))


def _slim(row: dict[str, Any]) -> dict[str, Any]:
    """What the summary and the metrics need: an archive's report stays small in memory."""
    return {key: row[key] for key in SUMMARY_FIELDS if key in row}


def _check(options: ScanOptions) -> None:
    if options.out.suffix not in OUT_SUFFIXES:
        raise ScanError(f"--out must end in {' or '.join(OUT_SUFFIXES)}, not {options.out.name!r}")
    if not 1 <= options.workers <= 64:
        raise ScanError("--workers must be 1-64")
    try:
        Artifacts(options.artifacts).load()
    except ArtifactsError as exc:
        raise ScanError(f"{exc}; or pass --artifacts DIR") from None


def _run(files: list[str], options: ScanOptions, language: str) -> Iterator[dict[str, Any]]:
    threads = options.threads or max(1, (os.cpu_count() or 1) // options.workers)
    settings = Settings(
        api_key="scan",  # never served: the scan runs in-process
        artifacts_dir=options.artifacts,
        threads=threads,
        window_seconds=options.window_seconds,
        max_audio_seconds=options.max_seconds,
    )
    context = multiprocessing.get_context("spawn")
    workers = min(options.workers, len(files))
    progress = Progress(len(files), sys.stderr if options.progress else None)
    with (
        context.Pool(workers, initializer=_load_worker, initargs=(settings,)) as pool,
        _Writer(options.out) as writer,
    ):
        for row in pool.imap_unordered(_scan_one, [(path, language) for path in files]):
            writer.write(row)
            progress.update(row)
            yield row
    progress.close()


_RUNTIME: Runtime | None = None


def _load_worker(settings: Settings) -> None:
    global _RUNTIME
    _RUNTIME = load_runtime(settings, Metrics())


def _scan_one(job: tuple[str, str]) -> dict[str, Any]:
    path, language = job
    assert _RUNTIME is not None
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise ClientError(f"file is larger than {MAX_FILE_BYTES >> 20} MiB")
        detection = _RUNTIME.analyse(Path(path).read_bytes())
    except ClientError as exc:
        return {"file": path, **error_body(exc.message)}
    except OSError as exc:
        return {"file": path, **error_body(f"could not read the file: {exc.strerror or exc}")}
    return {
        "file": path,
        **success_body(language, detection, _RUNTIME.weights),
        "seconds": round(detection.seconds, 3),
    }


class _Writer:
    """Appends one line per file and flushes it, so an interrupted scan resumes where it stopped."""

    def __init__(self, out: Path) -> None:
        self._out = out
        self._handle: TextIO | None = None
        self._csv: csv.DictWriter[str] | None = None

    def __enter__(self) -> _Writer:
        fresh = not self._out.exists() or self._out.stat().st_size == 0
        self._out.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self._out.open("a", newline="")
        if not fresh and not _ends_with_newline(self._out):
            self._handle.write("\n")  # an interrupted run left half a line: start a new one
        if self._out.suffix == ".csv":
            self._csv = csv.DictWriter(self._handle, CSV_COLUMNS)
            if fresh:
                self._csv.writeheader()
        return self

    def write(self, row: dict[str, Any]) -> None:
        assert self._handle is not None
        if self._csv is not None:
            flat = {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            self._csv.writerow(flat)
        else:
            self._handle.write(json.dumps(row) + "\n")
        self._handle.flush()

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


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
    """The evaluation metrics of ``export.evaluate`` for the scanned files that ``labels`` lists."""
    import numpy as np

    from export.corpus import read_labels
    from export.metrics import report as metrics_report

    if labels.name != "labels.csv":
        raise ScanError("--labels must be a labels.csv (columns path,label,group,language) next to its audio")
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
