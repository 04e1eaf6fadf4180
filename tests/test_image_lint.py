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
    """actionlint from the repository root lints .github/workflows/, what GitHub reads."""
    tool("shellcheck")  # actionlint checks `run:` blocks with it
    assert (ROOT / ".github" / "workflows" / "pipeline.yml").is_file()
    assert not (ROOT / "ci" / "workflows").exists(), "GitHub never reads ci/workflows/"
    proc = run(tool("actionlint"), "-pyflakes=", "-verbose")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ".github/workflows/pipeline.yml" in proc.stderr  # it did lint the workflow


def test_make_lint_image_lints_github_workflows(tmp_path: Path):
    """The recipe of `make lint-image` fails on a broken workflow under .github/workflows."""
    tool("shellcheck")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "actionlint.yaml").write_text(
        (ROOT / ".github" / "actionlint.yaml").read_text()
    )
    (tmp_path / ".github" / "workflows" / "x.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: [self-hosted, mi300]\n    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    recipe = (ROOT / "mk" / "image.mk").read_text()
    line = next(ln.strip() for ln in recipe.splitlines() if ln.strip().startswith("actionlint"))
    proc = run(*line.split(), cwd=tmp_path)
    assert proc.returncode != 0 and "github.nope" in proc.stdout


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
        tool("actionlint"),
        "-config-file",
        str(ROOT / ".github" / "actionlint.yaml"),
        str(bad_workflow),
    )
    assert proc.returncode != 0 and "mi999" in proc.stdout
    bad_sh = tmp_path / "x.sh"
    bad_sh.write_text("#!/bin/bash\nrm -rf $1/*\n")
    assert run(tool("shellcheck"), str(bad_sh)).returncode != 0


# ci/ scripts for people only: the pipeline does not run them.
BY_HAND_ONLY = {"server.sh"}


def test_ci_scripts_are_executable_and_documented():
    workflow = (ROOT / ".github" / "workflows" / "pipeline.yml").read_text()
    for script in ROOT.glob("ci/*.sh"):
        if script.name == "lib.sh":
            continue
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
        head = script.read_text().splitlines()[:16]
        assert any(line.startswith("#   ") and "ci/" in line for line in head), (
            f"{script.name}: the header must show the one command that runs it by hand"
        )
        if script.name not in BY_HAND_ONLY:
            assert f"ci/{script.name}" in workflow, f"{script.name} is not used by the pipeline"


def test_workflow_runs_only_ci_scripts():
    """The workflow stays thin: every `run:` is one ci/*.sh call."""
    text = (ROOT / ".github" / "workflows" / "pipeline.yml").read_text()
    runs = [ln.split("run:", 1)[1].strip() for ln in text.splitlines() if "run:" in ln]
    assert runs and all(r.startswith("ci/") and ".sh" in r.split()[0] for r in runs), runs
