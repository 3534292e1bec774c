"""The Dockerfile, render.yaml and CI script keep their promises (no Docker engine runs here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> dict[str, str]:
    parts = re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[1:]
    return {part.split()[2]: part for part in parts}


def test_two_stages_on_slim_python() -> None:
    found = stages()
    assert list(found) == ["export", "runtime"]
    assert all(part.startswith("python:3.11-slim") for part in found.values())


def test_export_stage_uses_cpu_torch_and_real_weights_by_default() -> None:
    export = stages()["export"]
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in export
    assert 'pip install --index-url "$TORCH_INDEX" "$torch"' in export
    assert re.search(r"^ARG WEIGHTS=pretrained$", DOCKERFILE, flags=re.MULTILINE)
    assert 'pretrained) source="--model facebook/wav2vec2-base"' in export
    assert "export.calibrate" in export


def test_one_corpus_package_list_read_by_dockerfile_scripts_and_corpus_builder() -> None:
    listed = (ROOT / "scripts" / "corpus-packages.txt").read_text().split()
    assert {"asterisk-core-sounds-en", "asterisk-core-sounds-en-wav", "espeak-ng", "flite"} <= set(listed)
    for script in ("serve", "test"):  # both through install.sh
        assert "install_corpus_tools" in (ROOT / "scripts" / script).read_text()
    for user in (
        DOCKERFILE,
        (ROOT / "scripts" / "install.sh").read_text(),
        (ROOT / "export" / "devcorpus.py").read_text(),
    ):
        assert "corpus-packages.txt" in user
        assert "asterisk-core-sounds-en-wav" not in user


def test_random_weights_image_is_labelled() -> None:
    runtime = stages()["runtime"]
    assert 'voicecheck.weights="$WEIGHTS"' in runtime


def test_runtime_stage_has_no_torch_runs_as_non_root_and_checks_health() -> None:
    runtime = stages()["runtime"]
    assert "torch" not in runtime
    assert "[export]" not in runtime
    assert re.search(r"^USER (?!root)\w+", runtime, flags=re.MULTILINE)
    assert "HEALTHCHECK" in runtime
    assert "/health" in runtime
    assert "COPY --from=export /artifacts" in runtime
    assert "PORT" in runtime
    assert 'CMD ["python", "-m", "service"]' in runtime


def test_runtime_dependencies_exclude_the_export_stack() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for heavy in ("torch", "transformers", "optimum", "onnx>"):
        assert heavy not in runtime
    export = " ".join(project["optional-dependencies"]["export"])
    assert re.search(r"\btorch==[\d.]+", export)  # the form scripts/install.sh and the Dockerfile read
    assert "transformers" in export
    assert "optimum-onnx" in export


def parse_render() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "render.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_render_blueprint_is_free_docker_with_health_and_generated_key() -> None:
    [service] = parse_render()["services"]
    assert service["type"] == "web"
    assert service["runtime"] == "docker"
    assert service["plan"] == "free"
    assert service["healthCheckPath"] == "/health"
    env = {item["key"]: item for item in service["envVars"]}
    assert env["API_KEY"] == {"key": "API_KEY", "generateValue": True}
    assert env["THREADS"]["value"] == "1"
    assert "PORT" in env


def test_no_secret_in_the_repo() -> None:
    text = (ROOT / "render.yaml").read_text() + DOCKERFILE
    assert not re.search(r"API_KEY\s*[=:]\s*\S{8,}", text)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in ci
    assert "scripts/test" in readme
