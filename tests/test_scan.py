from __future__ import annotations

import fcntl
import json
import os
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.cli.scan import (
    FileOptions,
    ScanError,
    Scanner,
    ScanOptions,
    find_audio,
    read_rows,
    scan,
    summary_table,
)
from service.detector.audio import decode_audio
from service.detector.windows import detect
from tests.conftest import encode, payload, post, speech


def options(archive: Path, out: Path, **changes: Any) -> ScanOptions:
    base = ScanOptions(paths=(archive,), out=out, artifacts=archive.parent.parent / "unused", progress=False)
    return replace(base, **changes)


def test_find_audio_recurses_and_keeps_only_audio(archive: Path) -> None:
    names = [p.name for p in find_audio([archive, archive / "a.wav"])]
    assert names == ["b.flac", "c.MP3", "a.wav", "broken.ogg"]
    with pytest.raises(ScanError, match="neither a file nor a folder"):
        find_audio([archive / "missing"])


def test_scan_writes_the_json_routes_answer_per_file_and_resumes(
    archive: Path, tiny_artifacts: Path, tmp_path: Path, client: TestClient
) -> None:
    out = tmp_path / "results.jsonl"
    report = scan(options(archive, out, artifacts=tiny_artifacts, workers=2, threads=1))
    assert (report.scanned, report.skipped) == (4, 0)
    rows = {Path(row["file"]).name: row for row in read_rows(out)}
    assert set(rows) == {"a.wav", "b.flac", "c.MP3", "broken.ogg"}
    assert rows["broken.ogg"] == {
        "file": str((archive / "broken.ogg").resolve()),
        "status": "error",
        "message": "could not decode audio: send MP3, WAV, FLAC or OGG bytes",
        "weights": "random-init",
    }
    for name in ("a.wav", "b.flac", "c.MP3"):
        row = dict(rows[name])
        assert row.pop("file") == str(next(archive.rglob(name)).resolve())
        assert row.pop("seconds") > 2
        assert row.pop("weights") == "random-init"
        status, answer = post(client, payload(next(archive.rglob(name)).read_bytes()))
        assert status == 200
        answer.pop("weights", None)  # the JSON route's answer may carry it too (issue #20)
        assert row == answer
    assert report.audio_seconds == pytest.approx(sum(r.get("seconds", 0) for r in rows.values()))

    again = scan(options(archive, out, artifacts=tiny_artifacts, threads=1))
    assert (again.scanned, again.skipped, len(again.rows)) == (0, 4, 4)

    kept = [line for line in out.read_text().splitlines() if "a.wav" not in line]
    out.write_text("\n".join(kept) + "\n" + '{"file": "half-writ')  # an interrupted last line
    resumed = scan(options(archive, out, artifacts=tiny_artifacts, threads=1))
    assert (resumed.scanned, resumed.skipped) == (1, 3)
    assert sorted(Path(r["file"]).name for r in read_rows(out)) == ["a.wav", "b.flac", "broken.ogg", "c.MP3"]

    table = summary_table(resumed)
    assert "failed" in table
    assert "1  could not decode audio" in table
    assert "broken.ogg" in table


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"out": Path("results.txt")}, "--out must end in .jsonl or .csv"),
        ({"workers": 0}, "--workers must be 1-64"),
        ({}, "pass --artifacts DIR"),
    ],
)
def test_scan_refuses_bad_options(archive: Path, tmp_path: Path, changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ScanError, match=words):
        scan(replace(options(archive, tmp_path / "r.jsonl"), **changes))


@pytest.fixture
def short_clips(tmp_path: Path) -> Path:
    """Two short clips, one of them with a file name that is not valid UTF-8."""
    folder = tmp_path / "clips"
    folder.mkdir()
    clip = encode(speech(2.0, seed=3), 16_000, "WAV", "PCM_16")
    (folder / "plain.wav").write_bytes(clip)
    Path(os.fsdecode(bytes(folder) + b"/caf\xe9-\xff.wav")).write_bytes(clip)
    return folder


def test_a_long_file_is_analysed_one_window_at_a_time(tiny_artifacts: Path, tmp_path: Path) -> None:
    """Issue #19 (7): the memory a file's analysis holds does not grow with its length, and the
    verdict is still the whole clip's (the JSON route's)."""
    scanner = Scanner.load(tiny_artifacts, threads=1)
    options = FileOptions(window_seconds=2.0)
    peaks = {}
    for seconds in (10.0, 80.0):
        path = tmp_path / f"{seconds:g}.wav"
        path.write_bytes(encode(speech(seconds, seed=4), 16_000, "WAV", "PCM_16"))
        tracemalloc.start()
        detection = scanner.analyse(str(path), options)
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        whole = detect(scanner.detector.encoder, scanner.detector.rules, decode_audio(path.read_bytes()), 2.0)
        assert detection == whole
    whole_waveform = 80.0 * 16_000 * 4  # what decoding the 80 s file at once holds: 5 MB
    assert peaks[80.0] - peaks[10.0] < whole_waveform / 5


def test_any_file_name_fits_in_csv_and_jsonl_and_resumes(
    short_clips: Path, tiny_artifacts: Path, tmp_path: Path
) -> None:
    """Issue #19 (8): a name that is not valid UTF-8 is written with \\xNN escapes, and resumes."""
    for out in (tmp_path / "r.csv", tmp_path / "r.jsonl"):
        report = scan(options(short_clips, out, artifacts=tiny_artifacts, threads=1))
        assert (report.scanned, report.skipped) == (2, 0)
        out.read_bytes().decode("utf-8")  # the output itself is valid UTF-8
        names = sorted(Path(row["file"]).name for row in read_rows(out))
        assert names == ["caf\\xe9-\\xff.wav", "plain.wav"]
        assert all(row["status"] == "success" for row in read_rows(out))
        again = scan(options(short_clips, out, artifacts=tiny_artifacts, threads=1))
        assert (again.scanned, again.skipped) == (0, 2)


def test_resume_skips_damaged_and_wrongly_typed_lines_with_a_warning(
    short_clips: Path, tiny_artifacts: Path, tmp_path: Path
) -> None:
    """Issue #19 (9, 10): invalid bytes, wrong types and half lines are skipped and counted."""
    out = tmp_path / "r.jsonl"
    plain = str((short_clips / "plain.wav").resolve())
    good = {
        "file": plain,
        "status": "success",
        "classification": "HUMAN",
        "confidenceScore": 0.5,
        "seconds": 2,
    }
    out.write_bytes(
        json.dumps(good).encode()
        + b'\n{"file": "\xff\xfe"}\n'
        + b'{"file": ["x"], "status": "success"}\n'
        + json.dumps({**good, "confidenceScore": "high"}).encode()
        + b"\n[1, 2]\n\n"
        + b'{"file": "half'
    )
    warnings: list[str] = []
    report = scan(options(short_clips, out, artifacts=tiny_artifacts, threads=1), warn=warnings.append)
    assert (report.scanned, report.skipped, report.damaged) == (1, 1, 5)
    assert any("skipped 5 damaged line(s)" in line for line in warnings)
    assert len(read_rows(out)) == 2


def test_a_line_of_the_wrong_type_is_skipped_not_a_crash(short_clips: Path, tmp_path: Path) -> None:
    """Issue #19 (10): JSON of the right shape with a field of the wrong type."""
    out = tmp_path / "r.jsonl"
    plain = str((short_clips / "plain.wav").resolve())
    out.write_text(
        json.dumps({"file": [plain], "status": "success"})
        + "\n"
        + json.dumps({"file": plain, "status": "error", "message": 3})
        + "\n"
        + json.dumps({"file": plain, "status": "error", "message": "could not decode audio"})
        + "\n"
    )
    assert [row["message"] for row in read_rows(out)] == ["could not decode audio"]
    csv_out = tmp_path / "r.csv"
    csv_out.write_text(
        "file,status,classification,confidenceScore,seconds\n" + f"{plain},success,HUMAN,high,2\n"
    )
    assert read_rows(csv_out) == []


def test_a_second_scan_onto_the_same_out_is_refused(
    short_clips: Path, tiny_artifacts: Path, tmp_path: Path
) -> None:
    """Issue #19 (11): --out is locked while a scan writes it."""
    out = tmp_path / "r.jsonl"
    with out.open("ab") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running scan holds
        with pytest.raises(ScanError, match="another scan is writing to"):
            scan(options(short_clips, out, artifacts=tiny_artifacts, threads=1))
    assert out.read_bytes() == b""
    assert scan(options(short_clips, out, artifacts=tiny_artifacts, threads=1)).scanned == 2


def test_resume_keys_rows_by_resolved_path(
    short_clips: Path, tiny_artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #19 (13): `scan clips` then `scan /abs/path/clips` scans nothing twice."""
    out = tmp_path / "r.jsonl"
    monkeypatch.chdir(short_clips.parent)
    first = scan(options(Path("clips"), out, artifacts=tiny_artifacts, threads=1))
    assert first.scanned == 2
    assert all(Path(row["file"]).is_absolute() for row in read_rows(out))
    again = scan(options(short_clips.resolve(), out, artifacts=tiny_artifacts, threads=1))
    assert (again.scanned, again.skipped) == (0, 2)
    assert len(read_rows(out)) == 2
