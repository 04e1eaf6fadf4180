"""Everything that runs inside the ROCm image (Python 3.10) or on the runners needs only 3.10:
`make lint-py310` (vermin, pinned in versions.env) over the same paths, and it does catch 3.11+
code (tomllib, typing.Self, datetime.UTC)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_image_helpers import ROOT

MK = (ROOT / "mk" / "image.mk").read_text()


def make_var(name: str) -> list[str]:
    match = re.search(rf"^{name} := (.*?)(?<!\\)$", MK, flags=re.M | re.S)
    assert match, f"mk/image.mk lacks {name}"
    return match.group(1).replace("\\\n", " ").split()


def vermin() -> str:
    found = shutil.which("vermin", path=str(Path(sys.executable).parent))
    if found is None:
        message = "vermin is not installed: run scripts/setup_env.sh (VERMIN_VERSION)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_vermin(*paths: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [vermin(), *make_var("VERMIN_ARGS"), *paths],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_image_code_needs_only_python_310():
    paths = make_var("PY310_PATHS")
    for required in ("scripts/gates", "scripts/image", "scripts/ci", "docker"):
        assert required in paths
    for p in paths:
        assert (ROOT / p).exists(), f"PY310_PATHS lists {p}, which does not exist"
    proc = run_vermin(*paths)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "code",
    [
        "import tomllib\n",
        "from typing import Self\n",
        "import datetime\nprint(datetime.UTC)\n",
        "try:\n    pass\nexcept* ValueError:\n    pass\n",
    ],
)
def test_vermin_catches_311_code(tmp_path: Path, code: str):
    (tmp_path / "mod.py").write_text(code)
    proc = run_vermin("mod.py", cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout


def test_gates_config_reads_toml_without_tomllib(tmp_path: Path):
    """On 3.10 the config module falls back to tomli (blocked tomllib import stands in for 3.10)."""
    pytest.importorskip("tomli")
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tomllib':\n"
        "            raise ImportError('no tomllib on 3.10')\n"
        "sys.meta_path.insert(0, _Block())\n"
        "sys.version_info = (3, 10, 13, 'final', 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.gates", "print-commands"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--kv-cache-dtype fp8_e4m3" in proc.stdout
