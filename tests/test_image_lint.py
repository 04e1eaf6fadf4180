"""The image and pipeline files lint clean (the same commands as `make lint-image`), and the
linters do catch a broken file. The linters are the pins of versions.env, installed into .venv by
scripts/setup_env.sh; a missing one fails under CI and is skipped only on a developer machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_image_helpers import ROOT

VENV_BIN = ROOT / ".venv" / "bin"
PATH = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def tool(name: str) -> str:
    found = shutil.which(name, path=PATH)
    if found is None:
        message = f"{name} is not installed: run scripts/setup_env.sh (pins in versions.env)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=PATH)
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, check=False)


def test_hadolint_clean():
    proc = run(tool("hadolint"), "docker/rocm.Dockerfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_clean():
    scripts = sorted(
        str(p.relative_to(ROOT)) for p in [*ROOT.glob("docker/*.sh"), *ROOT.glob("ci/*.sh")]
    )
    assert "ci/server.sh" in scripts and "docker/install_tilelang.sh" in scripts
    proc = run(tool("shellcheck"), "-x", *scripts)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_clean():
    tool("shellcheck")  # actionlint checks `run:` blocks with it
    proc = run(
        tool("actionlint"),
        "-config-file",
        "ci/actionlint.yaml",
        "-pyflakes=",
        "ci/workflows/pipeline.yml",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_linters_catch_errors(tmp_path: Path):
    bad_docker = tmp_path / "Dockerfile"
    bad_docker.write_text("FROM ubuntu\nRUN cd /tmp && apt-get install curl\n")
    assert run(tool("hadolint"), str(bad_docker)).returncode != 0
    bad_workflow = tmp_path / "wf.yml"
    bad_workflow.write_text(
        "on: push\njobs:\n  a:\n    runs-on: [self-hosted, mi999]\n    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    proc = run(
        tool("actionlint"), "-config-file", str(ROOT / "ci" / "actionlint.yaml"), str(bad_workflow)
    )
    assert proc.returncode != 0 and "mi999" in proc.stdout
    bad_sh = tmp_path / "x.sh"
    bad_sh.write_text("#!/bin/bash\nrm -rf $1/*\n")
    assert run(tool("shellcheck"), str(bad_sh)).returncode != 0


def test_ci_scripts_are_executable_and_documented():
    for script in ROOT.glob("ci/*.sh"):
        if script.name == "lib.sh":
            continue
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
        head = script.read_text().splitlines()[:12]
        assert any(line.startswith("#   ") and "ci/" in line for line in head), (
            f"{script.name}: the header must show the one command that runs it by hand"
        )
        workflow = (ROOT / "ci" / "workflows" / "pipeline.yml").read_text()
        assert f"ci/{script.name}" in workflow, f"{script.name} is not used by the pipeline"
