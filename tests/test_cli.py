from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main
from tests.live import ROOT


@pytest.mark.parametrize("command", ["serve", "scan", "stream", "export", "calibrate", "evaluate", "layers"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_top_level_help_lists_the_subcommands() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "service.cli", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
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
