from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from service.cli.main import main
from tests.conftest import encode, speech
from tests.live import ROOT

CLI_MODULE = "service.cli.main"  # what the voicecheck command runs


@pytest.mark.parametrize("command", ["serve", "scan", "stream", "export", "calibrate", "evaluate", "layers"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_top_level_help_lists_the_subcommands() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", CLI_MODULE, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("serve", "scan", "stream", "export", "calibrate", "evaluate", "layers"):
        assert command in shown


def test_stream_without_a_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", str(tmp_path / "x.wav"), "--key", ""]) == 2
    assert "--key" in capsys.readouterr().err


def test_scan_command_writes_csv_and_prints_summary_and_metrics(
    archive: Path, tiny_artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.csv"
    argv = [
        "scan",
        str(archive),
        "--out",
        str(out),
        "--artifacts",
        str(tiny_artifacts),
        "--threads",
        "1",
        "--labels",
        str(archive / "labels.csv"),
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "AI_GENERATED" in printed
    assert "HUMAN" in printed
    assert "balanced_accuracy" in printed
    assert "evaluation (3 of 3 labelled files scanned)" in printed
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    good = next(r for r in rows if r["file"].endswith("a.wav"))
    assert good["status"] == "success"
    assert len(json.loads(good["votes"])) == 5
    assert 0 <= float(good["confidenceScore"]) <= 1
    assert good["weights"] == "random-init"


def scan_command(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", CLI_MODULE, "scan", *args, "--threads", "1", "--no-progress"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_scan_says_the_weights_are_random_and_shows_no_decoder_notes(
    tiny_artifacts: Path, tmp_path: Path
) -> None:
    """Issue #20: a warning and a weights field for random weights; libmpg123's notes filtered in
    the workers; ARTIFACTS_DIR honoured."""
    clips = tmp_path / "clips"
    clips.mkdir()
    sf.write(clips / "speech.mp3", speech(12.3, seed=5), 16_000, format="MP3")  # makes libmpg123 talk
    out = tmp_path / "r.jsonl"
    process = scan_command(
        str(clips), "--out", str(out), cwd=tmp_path, env={"ARTIFACTS_DIR": str(tiny_artifacts)}
    )
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "libmpg123" not in stderr + stdout
    assert "RANDOM WEIGHTS" in stderr.splitlines()[0]
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["status"], row["weights"]) == ("success", "random-init")


def test_a_killed_worker_is_reported_and_its_file_retried_once_then_failed(
    tiny_artifacts: Path, tmp_path: Path
) -> None:
    """Issue #19 (12): what the out-of-memory killer does to a worker does not hang the scan."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.wav").write_bytes(encode(speech(2.0, seed=6), 16_000, "WAV", "PCM_16"))
    (clips / "long.wav").write_bytes(encode(speech(120.0, seed=7), 16_000, "WAV", "PCM_16"))
    out = tmp_path / "r.jsonl"
    process = scan_command(str(clips), "--out", str(out), "--artifacts", str(tiny_artifacts))
    killed: set[int] = set()  # a worker just killed can still show its open files for a moment
    deadline = time.monotonic() + 300
    while process.poll() is None and len(killed) < 2 and time.monotonic() < deadline:
        for worker in set(children(process.pid)) - killed:
            if holds_open(worker, "long.wav"):
                os.kill(worker, signal.SIGKILL)
                killed.add(worker)
        time.sleep(0.005)
    stdout, stderr = process.communicate(timeout=300)
    assert len(killed) == 2
    assert process.returncode == 0, stderr
    assert "died (killed by SIGKILL" in stderr
    assert "died again" in stderr
    rows = {Path(row["file"]).name: row for row in map(json.loads, out.read_text().splitlines())}
    assert rows["a.wav"]["status"] == "success"
    assert rows["long.wav"]["status"] == "error"
    assert "died twice" in rows["long.wav"]["message"]
    assert "failed 1" in " ".join(stdout.split())  # the summary table's count


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def holds_open(pid: int, name: str) -> bool:
    with contextlib.suppress(OSError):
        return any(os.readlink(fd).endswith(name) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--out", "{tmp}/folder.jsonl"], "is a folder"),
        (["--out", "{tmp}/file.txt/r.jsonl"], "cannot write --out"),
        (["--out", "{tmp}/r.jsonl", "--language", "Klingon"], "unsupported language"),
        (["--out", "{tmp}/r.jsonl", "--window-seconds", "0"], "--window-seconds must be"),
        (["--out", "{tmp}/r.jsonl", "--max-seconds", "-1"], "--max-seconds must be"),
        (["--out", "{tmp}/r.jsonl", "--labels", "{tmp}/labels.csv"], "--labels must be"),
    ],
)
def test_every_bad_scan_argument_is_one_line_and_exit_2(
    argv: list[str],
    words: str,
    archive: Path,
    tiny_artifacts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue #19 (14)."""
    (tmp_path / "file.txt").write_text("a file, not a folder")
    (tmp_path / "folder.jsonl").mkdir()
    given = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert main(["scan", str(archive), *given, "--artifacts", str(tiny_artifacts), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voicecheck scan: ")
    assert words in err
    assert len(err.strip().splitlines()) == 1


def test_scan_without_artifacts_points_at_the_option_and_the_variable(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #20: outside the repo, say where the model goes, not only how to export one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARTIFACTS_DIR", raising=False)
    assert main(["scan", str(archive), "--out", "r.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "--artifacts DIR" in err
    assert "ARTIFACTS_DIR" in err
