"""The service must run where torch, transformers and optimum cannot even be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {'torch', 'transformers', 'optimum'}:
            raise ImportError('blocked in this test: ' + name)
        return None
sys.meta_path.insert(0, Block())
"""


# The service's own tests: they run on the committed tiny export (tests/tiny_artifacts.py), never torch.
SERVICE_TESTS = (
    "test_api",
    "test_audio",
    "test_cli",
    "test_deadline",
    "test_detector",
    "test_features",
    "test_front_door",
    "test_fuzz",
    "test_hardening",
    "test_limiter",
    "test_scan",
    "test_scoring",
    "test_server_internals",
    "test_settings",
    "test_shutdown",
    "test_stream",
    "test_stream_client",
    "test_upload",
    "test_votes",
)
# the command line's export subcommand parses its options in export/ (the help of `voicecheck export`)
NEEDS_THE_EXPORT_EXTRA = ("tests/test_cli.py::test_every_subcommand_has_help[export]",)


def run_without_torch(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_blocker_really_blocks() -> None:
    result = run_without_torch("import torch")
    assert result.returncode != 0
    assert "blocked in this test" in result.stderr


def test_every_service_module_imports_and_serves_without_torch(tiny_artifacts: Path) -> None:
    code = f"""
import pkgutil, importlib, service
for module in pkgutil.walk_packages(service.__path__, 'service.'):
    if module.name != 'service.cli.scan_ray':  # the cluster extra's (tests/test_scan_ray.py)
        importlib.import_module(module.name)
from pathlib import Path
from starlette.testclient import TestClient
from service.web.app import create_app
from service.web.settings import Settings
app = create_app(Settings(api_key='k', artifacts_dir=Path({str(tiny_artifacts)!r}), threads=1))
with TestClient(app) as client:
    assert client.get('/health').status_code == 200
print('ok', sorted(m for m in sys.modules if m.split('.')[0] in {{'torch','transformers','optimum'}}))
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok []"


def test_calibrate_and_evaluate_import_without_torch() -> None:
    result = run_without_torch("import export.calibrate, export.evaluate; print('ok')")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_service_tests_pass_where_torch_cannot_be_imported() -> None:
    """Every service test, run again with torch, transformers and optimum blocked: a test or fixture
    that starts needing the export (an export made on the fly) fails here, named."""
    arguments = [f"tests/{name}.py" for name in SERVICE_TESTS] + ["-q", "-x", "-p", "no:cacheprovider"]
    arguments += [f"--deselect={test}" for test in NEEDS_THE_EXPORT_EXTRA]
    code = f"import pytest; sys.exit(pytest.main({arguments!r}))"
    result = run_without_torch(code, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_service_test_file_is_run_without_torch() -> None:
    """A new test file that needs no export belongs in SERVICE_TESTS; one that needs it, here."""
    export_side = {"test_export", "test_graph_memory", "test_layerscan", "test_calibrate", "test_devcorpus"}
    # test_scan_ray: run once (it starts Ray clusters; its workers are processes of their own)
    elsewhere = {
        "test_runtime_imports",
        "test_deploy",
        "test_dependencies",
        "test_scripts",
        "test_scan_ray",
        "test_layout",
    }
    present = {path.stem for path in (ROOT / "tests").glob("test_*.py")}
    assert present - export_side - elsewhere == set(SERVICE_TESTS)
