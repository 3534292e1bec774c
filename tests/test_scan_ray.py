"""``voicecheck scan --engine ray`` (issue #23) on a Ray this module starts: the local engine's rows,
actors spread over two nodes, a killed actor costing nothing, resume, one-line errors."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from service.cli.scan import FileOptions, ScanError, ScanOptions, read_rows, scan
from service.web.contract import error_body
from tests.conftest import encode, speech
from tests.test_runtime_imports import ROOT

ray = pytest.importorskip("ray", reason="the cluster extra: pip install '.[cluster]'")
from ray.cluster_utils import Cluster  # noqa: E402
from ray.data import DataContext  # noqa: E402

from service.cli.scan_ray import NOT_ANALYSED, analysed  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 files: WAV, FLAC and OGG clips of 2-5 s, human-like and flat, and one that is not audio."""
    root = tmp_path_factory.mktemp("clips")
    (root / "sub").mkdir()
    for index in range(11):
        fmt = ("WAV", "FLAC", "OGG")[index % 3]
        audio = speech(2.0 + index % 4, seed=index, natural=index % 2 == 0)
        (root / ("sub" if index % 4 == 0 else "") / f"clip{index:02d}.{fmt.lower()}").write_bytes(
            encode(audio, 16_000, fmt)
        )
    (root / "broken.wav").write_bytes(b"RIFF, but not a wave")
    return root


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def ray_options(paths: tuple[Path, ...], out: Path, artifacts: Path, **changes: Any) -> ScanOptions:
    options = ScanOptions(
        paths=paths, out=out, artifacts=artifacts, workers=2, threads=1, progress=False, engine="ray"
    )
    return replace(options, **changes)


def by_file(out: Path) -> dict[str, dict[str, Any]]:
    rows = read_rows(out)
    files = [row["file"] for row in rows]
    assert len(files) == len(set(files)), "a file written twice"
    return {row["file"]: row for row in rows}


def test_ray_gives_the_local_engines_rows(
    clips: Path, tiny_artifacts: Path, tmp_path: Path, local_ray: None
) -> None:
    local = scan(replace(ray_options((clips,), tmp_path / "local.jsonl", tiny_artifacts), engine="local"))
    report = scan(ray_options((clips,), tmp_path / "ray.jsonl", tiny_artifacts))
    assert (report.scanned, local.scanned) == (12, 12)
    expected = by_file(tmp_path / "local.jsonl")
    assert by_file(tmp_path / "ray.jsonl") == expected  # every field of every line
    assert sum(row["status"] == "success" for row in expected.values()) == 11
    assert report.audio_seconds == pytest.approx(local.audio_seconds)
    assert len(report.workers) == 2
    assert all(worker.peak_rss_mb > 50 for worker in report.workers)
    assert sum(worker.files for worker in report.workers) == 12

    uris = scan(ray_options((), tmp_path / "uri.jsonl", tiny_artifacts, uris=(clips.as_uri(),)))
    assert uris.scanned == 12
    assert by_file(tmp_path / "uri.jsonl") == {
        Path(name).as_uri(): {**row, "file": Path(name).as_uri()} for name, row in expected.items()
    }


def test_ray_resumes_from_either_engines_output(
    clips: Path, tiny_artifacts: Path, tmp_path: Path, local_ray: None
) -> None:
    out = tmp_path / "results.csv"
    first = scan(replace(ray_options((clips,), out, tiny_artifacts), engine="local"))
    assert first.scanned == 12
    complete = by_file(out)
    again = scan(ray_options((clips,), out, tiny_artifacts))
    assert (again.scanned, again.skipped, again.workers) == (0, 12, ())

    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-4]) + "\n" + lines[-4][:25])  # three lost, one half-written
    resumed = scan(ray_options((clips,), out, tiny_artifacts))
    assert (resumed.scanned, resumed.skipped, resumed.damaged) == (4, 8, 1)
    assert by_file(out) == complete


def test_a_killed_actor_loses_and_duplicates_nothing(
    tiny_artifacts: Path, tmp_path: Path, local_ray: None
) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    for index in range(8):
        (folder / f"long{index}.wav").write_bytes(encode(speech(12.0, seed=index), 16_000, "WAV", "PCM_16"))
    out = tmp_path / "results.jsonl"
    reports = []
    job = threading.Thread(target=lambda: reports.append(scan(ray_options((folder,), out, tiny_artifacts))))
    job.start()
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = actor_pids()[0]
    os.kill(killed, signal.SIGKILL)  # as the out-of-memory killer would
    job.join(180)
    assert not job.is_alive()
    rows = by_file(out)
    assert sorted(Path(name).name for name in rows) == [f"long{index}.wav" for index in range(8)]
    assert all(row["status"] == "success" for row in rows.values())
    pids = {worker.pid for worker in reports[0].workers}
    assert len(pids) >= 2  # whether the restarted actor gets a file too depends on Ray's scheduling


def actor_pids() -> list[int]:
    """This test's Ray Data actors: processes under this one named ray::MapWorker..."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            if descends_from(pid, os.getpid()) and b"MapWorker" in (stat.parent / "cmdline").read_bytes():
                found.append(pid)
        except (OSError, ValueError):
            continue
    assert found, "no actor process found"
    return found


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return False


def test_a_file_gone_since_the_listing_is_recorded_and_the_rest_scanned(
    clips: Path, tiny_artifacts: Path, tmp_path: Path, local_ray: None
) -> None:
    options = ray_options((clips,), tmp_path / "r.jsonl", tiny_artifacts)
    present, gone = str(next(clips.glob("clip01.*"))), str(tmp_path / "deleted.wav")
    rows = {row["file"]: row for row in analysed([present, gone], options, FileOptions(), print)}
    assert rows[present]["status"] == "success"
    assert rows[gone] == {"file": gone, **error_body(NOT_ANALYSED)}
    assert list(analysed([gone], options, FileOptions(), print)) == [rows[gone]]  # nothing left to read


def test_an_actor_that_cannot_load_the_model_fails_the_scan_in_one_line(
    clips: Path, tiny_artifacts: Path, tmp_path: Path, local_ray: None
) -> None:
    broken = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, broken)
    (broken / "model.onnx").write_bytes(
        b"not a graph"
    )  # the driver's checks read only the manifest and votes
    with pytest.raises(ScanError, match="an actor could not load the model") as error:
        scan(ray_options((clips,), tmp_path / "r.jsonl", broken))
    assert len(str(error.value).splitlines()) == 1
    assert read_rows(tmp_path / "r.jsonl") == []
    # and the pool is gone: the next scan gets both CPUs
    assert scan(ray_options((clips / "sub",), tmp_path / "next.jsonl", tiny_artifacts)).scanned == 3


def test_neither_the_service_nor_the_local_scan_imports_ray(tiny_artifacts: Path, tmp_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
import service.web.app, service.cli.main, service.cli.scan
from service.cli.scan import ScanOptions, scan
scan(ScanOptions(paths=(Path({str(tiny_artifacts)!r}),), out=Path({str(tmp_path / "r.jsonl")!r}),
     artifacts=Path({str(tiny_artifacts)!r}), progress=False))
print(sorted(m for m in sys.modules if m.split('.')[0] in {{'ray', 'pyarrow'}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_cluster_extra_engine_ray_is_one_line_and_exit_2(
    clips: Path, tiny_artifacts: Path
) -> None:
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] == 'ray':
            raise ImportError('No module named ' + repr(name))
sys.meta_path.insert(0, Block())
from service.cli.main import main
sys.exit(main(['scan', {str(clips)!r}, '--out', '/nonexistent/r.jsonl', '--engine', 'ray',
               '--artifacts', {str(tiny_artifacts)!r}, '--no-progress']))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("voicecheck scan: --engine ray needs the cluster extra")
    assert "pip install '.[cluster]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--engine", "spark"], "--engine must be local or ray"),
        (["--ray-address", "auto"], "--ray-address needs --engine ray"),
        (["--engine", "ray", "--workers", "0"], "--workers must be 1-64"),
        (["--engine", "ray", "--workers", "3"], "needs 3 CPUs; Ray has 2"),
        (["--engine", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach Ray at 127.0.0.1:1"),
        (["s3:///"], "URIs need --engine ray"),
        (["file:///nonexistent/folder", "--engine", "ray"], "neither a file nor a folder"),
    ],
)
def test_every_bad_ray_scan_argument_is_one_line_and_exit_2(
    argv: list[str],
    words: str,
    clips: Path,
    tiny_artifacts: Path,
    tmp_path: Path,
    local_ray: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from service.cli.main import main

    out = str(tmp_path / "r.jsonl")
    assert (
        main(["scan", str(clips), *argv, "--out", out, "--artifacts", str(tiny_artifacts), "--no-progress"])
        == 2
    )
    # the random-weights warning may come first: Ray's CPUs are counted only when there is work
    lines = [line for line in capsys.readouterr().err.splitlines() if "RANDOM WEIGHTS" not in line]
    assert len(lines) == 1
    assert lines[0].startswith("voicecheck scan: ")
    assert words in lines[0]


# last: it stops the module's Ray
def test_actors_spread_over_two_nodes(tiny_artifacts: Path, tmp_path: Path) -> None:
    ray.shutdown()  # the module's single-node Ray; this test joins a cluster of its own
    clips = tmp_path / "long"
    clips.mkdir()
    for index in range(12):  # long enough that an actor is still busy when the next file is read
        (clips / f"long{index}.wav").write_bytes(encode(speech(15.0, seed=index), 16_000, "WAV", "PCM_16"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    context = DataContext.get_current()
    context.wait_for_min_actors_s = 120  # both actors take files, however unequal their start-up
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        report = scan(
            ray_options((clips,), tmp_path / "r.jsonl", tiny_artifacts, ray_address=cluster.address)
        )
    finally:
        context.wait_for_min_actors_s = -1
        ray.shutdown()
        cluster.shutdown()
    assert report.scanned == 12
    assert len({worker.node for worker in report.workers}) == 2
    assert len(by_file(tmp_path / "r.jsonl")) == 12
