"""The service must run where torch, transformers and optimum cannot even be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_blocker_really_blocks() -> None:
    result = run_without_torch("import torch")
    assert result.returncode != 0
    assert "blocked in this test" in result.stderr


def test_every_service_module_imports_and_serves_without_torch(tiny_artifacts: Path) -> None:
    code = f"""
import pkgutil, importlib, service
for module in pkgutil.iter_modules(service.__path__):
    importlib.import_module('service.' + module.name)
from pathlib import Path
from starlette.testclient import TestClient
from service.app import create_app
from service.settings import Settings
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
