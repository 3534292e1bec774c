"""scripts/serve and scripts/test leave a new user with working commands and the whole suite, and
the README and docs/ print commands that run as printed in a new shell."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "artifacts" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_FOR_TESTS = {"plots"}  # matplotlib: only export.evaluate's optional PNGs


def test_scripts_test_installs_every_extra_the_tests_need() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = re.findall(r"^install_voicecheck (\S+)", (ROOT / "scripts" / "test").read_text(), re.M)
    assert installed
    assert set(installed[0].split(",")) == extras - NOT_FOR_TESTS
    imports = re.compile(r"^\s*(import|from) matplotlib", re.M)
    assert not any(imports.search(path.read_text()) for path in (ROOT / "tests").glob("*.py"))


def test_scripts_test_installs_the_tools_the_tests_need() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert "install_corpus_tools" in script
    tools = re.search(r"for t in ([^;]+); do command -v", (ROOT / "scripts" / "install.sh").read_text())
    assert tools is not None
    needed = {"sox", "ffmpeg"}  # tests/test_devcorpus.py skips without them
    assert needed <= set(tools.group(1).split())


@pytest.mark.parametrize(("ci", "outcome"), [("true", "failed"), ("", "skipped")])
def test_a_skipped_test_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401")
    pytester.makepyfile("import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('needs sox')\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*skipped*needs sox*scripts/test installs every extra*"])


@pytest.mark.parametrize("script", ["serve", "test"])
def test_serve_and_test_say_how_to_run_the_commands(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text()
    assert "how_to_use" in text
    if script == "serve":  # it execs the server: before that
        assert text.index("how_to_use") < text.index("exec ")
    else:  # after the tests, whatever their outcome
        assert text.index("how_to_use") > text.index("-m pytest")
    said = subprocess.run(
        ["bash", "-c", ". scripts/install.sh && VENV=.venv how_to_use"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    assert ".venv/bin/voicecheck --help" in said
    assert ". .venv/bin/activate" in said


def _commands(text: str) -> list[str]:
    """Code spans and the lines of code blocks."""
    blocks = re.findall(r"^```\w*\n(.*?)^```", text, re.M | re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```\w*\n.*?^```", "", text, flags=re.M | re.S))
    return [*lines, *spans]


def _needs_an_activated_venv(command: str) -> bool:
    """python, pip or pytest from PATH, or voicecheck with arguments (a bare subcommand name in
    prose, such as `voicecheck scan`, is a name, not a command)."""
    words = command.split()
    if not words:
        return False
    return words[0] in ("python", "python3", "pip", "pytest") or (words[0] == "voicecheck" and len(words) > 2)


@pytest.mark.parametrize("page", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_documented_commands_run_in_a_new_shell(page: Path) -> None:
    bare = [c for c in _commands(page.read_text()) if _needs_an_activated_venv(c)]
    assert bare == [], f"print them as .venv/bin/voicecheck ... or .venv/bin/python ...: {bare}"


def test_make_dev_corpus_uses_the_checkouts_venv_in_a_new_shell(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "scripts" / "make-dev-corpus").write_text((ROOT / "scripts" / "make-dev-corpus").read_text())
    python = checkout / ".venv" / "bin" / "python3"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "venv python $*"\n')
    python.chmod(0o755)
    result = subprocess.run(
        ["bash", str(checkout / "scripts" / "make-dev-corpus"), "corpus/dev"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "venv python -m export.devcorpus corpus/dev"
