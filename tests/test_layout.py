"""The rooms: every import points down (cli -> web -> detector -> labels; export -> detector), as
pyproject.toml's import-linter contracts say and scripts/import-graph shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOWNWARD = {
    ("service.cli", "service.web"),
    ("service.cli", "service.detector"),
    ("service.cli", "service.labels"),
    ("service.cli", "service.__main__"),  # `voicecheck serve`
    ("service.web", "service.detector"),
    ("service.web", "service.labels"),
    ("service.detector", "service.labels"),
    ("service.__main__", "service.web"),
    ("service.__main__", "service.detector"),
    ("export", "service.detector"),
    ("export", "service.labels"),
}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_an_import_pointing_up_breaks_the_rooms_contract(tmp_path: Path) -> None:
    for folder in ("service", "export"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    windows = tmp_path / "service" / "detector" / "windows.py"
    windows.write_text(windows.read_text() + "\nfrom service.web.settings import Settings  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "service.detector.windows -> service.web.settings" in result.stdout
    assert "tie pointing down BROKEN" in result.stdout  # the rooms contract (its name wraps)


def test_the_import_graph_has_only_downward_edges() -> None:
    printed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "import-graph")],
        env={**os.environ, "VENV": str(BIN.parent)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    edges = {(line.split()[0], line.split()[2]) for line in printed.splitlines()}
    assert ("service.web", "service.detector") in edges
    assert ("export", "service.detector") in edges
    assert edges <= DOWNWARD, f"imports that do not point down: {sorted(edges - DOWNWARD)}"
