"""The runtime install size: a fresh venv with only the runtime dependencies, site-packages measured
on disk (with and without pip), and whether torch came along."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.live import ROOT


def runtime_install_size() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, str(ROOT)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        total = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
        has_torch = (site / "torch").exists()
        without_pip = total - sum(
            f.stat().st_size for d in site.glob("pip*") for f in d.rglob("*") if f.is_file()
        )
    return {
        "site_packages_mb": round(total / 1e6, 1),
        "without_pip_mb": round(without_pip / 1e6, 1),
        "torch_installed": has_torch,
    }
