"""The ci/ pipeline on a CPU box: per-runner configuration, named and labelled containers with
cleanup, the pre-job node check, the workflow's shape, and the summary (scripts/ci/summary.py).
docker and rocm-smi are fakes (tests/image_fixtures/fake_docker.py); nothing real is started."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from scripts.ci import summary as ci_summary
from scripts.gates.cli import _parser as gates_parser
from scripts.gates.config import load_config
from tests.test_image_helpers import ROOT, FakeDocker

WORKFLOW = (ROOT / ".github" / "workflows" / "pipeline.yml").read_text()
RUN = {"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "1"}
NAME = "sglang-nsa-fp8-ci-42-1-gfx942-gates"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of ci/ (and the repo files it reads) so reports/ land in tmp, not in the tree."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "ci", root / "ci")
    (root / "reports" / "ci" / "gfx942").mkdir(parents=True)
    (root / "reports" / "ci" / "gfx942" / "image-tag").write_text("img:test\n")
    return root


@pytest.fixture
def docker(tmp_path: Path) -> FakeDocker:
    return FakeDocker(tmp_path)


def config_env(tmp_path: Path, text: str | None) -> dict[str, str]:
    path = tmp_path / "ci.env"
    if text is not None:
        path.write_text(text)
    return {"SGLANG_NSA_FP8_CI_CONFIG": str(path)}


def resolved(docker: FakeDocker, checkout: Path, **env: str) -> str:
    proc = docker.run(
        "bash", "-c", f'source {checkout}/ci/lib.sh; ci_load_config; echo "[$MODEL_PATH]"', **env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --- per-runner configuration ---------------------------------------------------------------


def test_empty_repository_variable_does_not_override_the_runner(
    docker: FakeDocker, checkout: Path, tmp_path: Path
):
    env = config_env(tmp_path, "# MI300 host\nMODEL_PATH=/runner/file\n")
    # GitHub sets an unset repository variable as an empty string.
    assert (
        resolved(docker, checkout, MODEL_PATH="", CI_REPO_MODEL_PATH="", **env) == "[/runner/file]"
    )
    assert resolved(docker, checkout, MODEL_PATH="/runner/env", **env) == "[/runner/env]"
    assert resolved(docker, checkout, CI_REPO_MODEL_PATH="/repo", **env) == "[/runner/file]"
    no_file = config_env(tmp_path / "none", None)
    assert (
        resolved(docker, checkout, CI_REPO_MODEL_PATH="/repo", MODEL_PATH="", **no_file)
        == "[/repo]"
    )


def test_config_file_rejects_unknown_keys(docker: FakeDocker, checkout: Path, tmp_path: Path):
    env = config_env(tmp_path, "MODEL_PAHT=/x\n")
    proc = docker.run("bash", "-c", f"source {checkout}/ci/lib.sh; ci_load_config", **env)
    assert proc.returncode != 0 and "unknown key MODEL_PAHT" in proc.stderr


def test_gates_without_model_path_says_where_to_set_it(
    docker: FakeDocker, checkout: Path, tmp_path: Path
):
    env = config_env(tmp_path / "none", None)
    proc = docker.run(str(checkout / "ci" / "gates.sh"), "gfx942", MODEL_PATH="", **env)
    assert proc.returncode != 0
    assert "/etc/sglang-nsa-fp8/ci.env" in proc.stderr and docker.calls() == []


# --- containers: named, labelled, removed, files given back ---------------------------------


def gates(
    docker: FakeDocker, checkout: Path, tmp_path: Path, extra: str = ""
) -> subprocess.CompletedProcess[str]:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    env = config_env(tmp_path, f"MODEL_PATH={model}\n{extra}")
    return docker.run(str(checkout / "ci" / "gates.sh"), "gfx942", **env, **RUN)


def test_gates_container_is_named_labelled_and_chowns(
    docker: FakeDocker, checkout: Path, tmp_path: Path
):
    proc = gates(docker, checkout, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [c for c in docker.calls() if c[0] == "run"]
    assert len(runs) == 1
    argv = runs[0]
    assert argv[argv.index("--name") + 1] == NAME
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
    assert "sglang-nsa-fp8.ci=1" in labels and "sglang-nsa-fp8.run=42-1-gfx942" in labels
    script = argv[-1]
    assert script.startswith("make gates ") and f"chown -R {_ids()} /workspace/reports" in script
    assert "rc=$?" in script and script.endswith("exit $rc")  # the gate's status survives the chown
    # The EXIT trap removes the container whatever happened.
    assert ["rm", "-f", NAME] in docker.calls()
    steps = (checkout / "reports" / "ci" / "gfx942" / "steps.tsv").read_text()
    assert steps.startswith("gates-all\tpass\t")


def test_failed_gates_still_remove_the_container(
    docker: FakeDocker, checkout: Path, tmp_path: Path
):
    docker.set("run_rc", "3")
    proc = gates(docker, checkout, tmp_path)
    assert proc.returncode == 3
    assert docker.calls()[-1] == ["rm", "-f", NAME]
    assert "gates-all\tfail\t" in (checkout / "reports" / "ci" / "gfx942" / "steps.tsv").read_text()


def test_upstream_run_uses_the_recorded_base_as_a_sibling_container(
    docker: FakeDocker, checkout: Path, tmp_path: Path
):
    """UPSTREAM=1: the unpatched base (by the digest make image used) becomes the gates' third
    server, started through the host's docker socket; the make line it builds parses into the
    gates' config as a list."""
    base = "lmsysorg/sglang:v0.5.9-rocm700-mi30x@sha256:" + "ab" * 32
    (checkout / "reports" / "ci" / "gfx942" / "image.json").write_text(
        json.dumps({"base_image": base})
    )
    (docker.bin / "python3").symlink_to(shutil.which("python3") or "/usr/bin/python3")
    proc = gates(docker, checkout, tmp_path, "UPSTREAM=1\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    argv = next(c for c in docker.calls() if c[0] == "run")
    assert "/var/run/docker.sock:/var/run/docker.sock" in argv
    make_line = shlex.split(argv[-1].split(";", 1)[0])
    assert make_line[:2] == ["make", "gates"]
    rendered = subprocess.run(
        ["make", "-n", "-s", "--no-print-directory", *make_line[1:]],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    args = gates_parser().parse_args(shlex.split(rendered)[3:])
    cfg = load_config(ROOT / "config" / "gates.toml", args.set)
    launch = cfg.upstream.launch
    assert launch[:4] == ["docker", "run", "--rm", "--name"]
    assert launch[4] == "sglang-nsa-fp8-ci-42-1-gfx942-upstream"
    assert launch[-4:] == [base, "python3", "-m", "sglang.launch_server"]
    assert "sglang-nsa-fp8.ci=1" in launch and "--device=/dev/kfd" in launch
    assert cfg.upstream.stop == ["docker", "rm", "-f", "sglang-nsa-fp8-ci-42-1-gfx942-upstream"]


def _ids() -> str:
    return (
        f"{subprocess.check_output(['id', '-u'], text=True).strip()}:"
        + subprocess.check_output(["id", "-g"], text=True).strip()
    )


def test_cleanup_removes_this_runs_containers(docker: FakeDocker, checkout: Path):
    docker.set("ps", "c0ffee\nbeef01\n")
    proc = docker.run(str(checkout / "ci" / "cleanup.sh"), "gfx942", **RUN)
    assert proc.returncode == 0, proc.stderr
    calls = docker.calls()
    assert ["ps", "-aq", "--filter", "label=sglang-nsa-fp8.run=42-1-gfx942"] in calls
    assert ["rm", "-f", "c0ffee", "beef01"] in calls
    docker.run(str(checkout / "ci" / "cleanup.sh"), "gfx942", "--all", **RUN)
    assert ["ps", "-aq", "--filter", "label=sglang-nsa-fp8.ci=1"] in docker.calls()


# --- pre-job node check -----------------------------------------------------------------------


def fake_rocm_smi(docker: FakeDocker, pids: str) -> None:
    tool = docker.bin / "rocm-smi"
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{pids}\nEOF\n")
    tool.chmod(0o755)


def node_check(docker: FakeDocker, checkout: Path, tmp_path: Path, port: int):
    env = config_env(tmp_path, f"PORT={port}\n")
    return docker.run(str(checkout / "ci" / "node_check.sh"), "gfx942", **env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_node_check_passes_on_an_idle_node(docker: FakeDocker, checkout: Path, tmp_path: Path):
    fake_rocm_smi(docker, "======= KFD Processes =======\nNo KFD PIDs currently running")
    proc = node_check(docker, checkout, tmp_path, free_port())
    assert proc.returncode == 0, proc.stderr
    assert "runner ready" in proc.stdout


def test_node_check_finds_leftovers_port_and_gpu_users(
    docker: FakeDocker, checkout: Path, tmp_path: Path
):
    docker.set("ps", "sglang-nsa-fp8-ci-41-1-gfx942-gates (Up 3 hours)\n")
    fake_rocm_smi(docker, "PID  PROCESS NAME  GPU(s)\n4242  python3  8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = node_check(docker, checkout, tmp_path, port)
    assert proc.returncode == 1
    assert "ci/cleanup.sh gfx942 --all" in proc.stderr
    assert f"listens on 127.0.0.1:{port}" in proc.stderr
    assert "4242 (python3)" in proc.stderr


# --- the workflow ------------------------------------------------------------------------------


def job(name: str) -> str:
    match = re.search(rf"^  {name}:\n(.*?)(?=^  \S|\Z)", WORKFLOW, flags=re.M | re.S)
    assert match, f"no job {name}"
    return match.group(1)


def test_main_is_never_cancelled_in_progress():
    assert "cancel-in-progress: ${{ github.ref != 'refs/heads/main' }}" in WORKFLOW


def test_gpu_job_checks_the_node_first_and_always_cleans_up():
    gpu = job("gpu")
    steps = re.findall(r"run: (ci/\S+)", gpu)
    assert steps[0] == "ci/node_check.sh" and steps[1] == "ci/image.sh"
    cleanup = gpu[gpu.index("ci/cleanup.sh") - 200 : gpu.index("ci/cleanup.sh")]
    assert "if: always()" in cleanup


def test_gpu_job_loads_each_server_configuration_once():
    gpu = job("gpu")
    assert gpu.count("ci/gates.sh") == 1 and '"${{ matrix.arch }}" all' in gpu
    assert "ci/server.sh" not in gpu


def test_repository_variables_are_fallbacks_only():
    gpu = job("gpu")
    assert "MODEL_PATH: ${{ vars." not in WORKFLOW  # would override the runner's own value
    assert "CI_REPO_MODEL_PATH: ${{ matrix.model_path }}" in gpu
    assert "vars.MODEL_PATH_GFX942" in gpu and "vars.MODEL_PATH_GFX950" in gpu


# --- summary -----------------------------------------------------------------------------------


def test_summary_table_and_gate_reports(tmp_path: Path):
    ci_dir = tmp_path / "ci" / "gfx942"
    ci_dir.mkdir(parents=True)
    (ci_dir / "image-tag").write_text("sglang-nsa-fp8:v0.5.9-qabc-gfx942\n")
    (ci_dir / "steps.tsv").write_text("apply\tpass\t12\tapply.log\nimage\tpass\t3725\timage.log\n")
    gate = tmp_path / "gfx942" / "accuracy"
    gate.mkdir(parents=True)
    (gate / "accuracy.md").write_text("| run | accuracy |\n|---|---|\n| fp8 | 0.95 |\n")
    text, ok = ci_summary.summary(tmp_path, [])
    assert ok
    assert "# sglang-nsa-fp8 pipeline: all steps passed" in text
    assert "Image: `sglang-nsa-fp8:v0.5.9-qabc-gfx942`" in text
    assert "| image | ✅ pass | 1h02m | `image.log` |" in text
    assert "| fp8 | 0.95 |" in text

    with (ci_dir / "steps.tsv").open("a") as f:
        f.write("server\tfail\t61\tserver.log\n")
    text, ok = ci_summary.summary(tmp_path, ["gfx942", "gfx950"])
    assert not ok
    assert "some steps failed" in text and "| server | ❌ fail | 1m01s |" in text
    assert "## gfx950\n\nImage: not built\n\nNo step recorded." in text


def test_summary_shows_the_base_digest_and_the_pin_to_commit(tmp_path: Path):
    ci_dir = tmp_path / "ci" / "gfx942"
    ci_dir.mkdir(parents=True)
    (ci_dir / "image-tag").write_text("img:t\n")
    digest = "sha256:" + "ab" * 32
    (ci_dir / "image.json").write_text(
        '{"base_image": "r:t@%s", "base_digest": "%s", "pin_line": "ROCM_BASE_DIGEST_GFX942=%s"}'
        % (digest, digest, digest)
    )
    text, _ = ci_summary.summary(tmp_path, ["gfx942"])
    assert f"Base: `r:t@{digest}`" in text
    assert f"ROCM_BASE_DIGEST_GFX942={digest}" in text


def test_summary_rejects_a_malformed_line(tmp_path: Path):
    ci_dir = tmp_path / "ci" / "gfx950"
    ci_dir.mkdir(parents=True)
    (ci_dir / "steps.tsv").write_text("image passed\n")
    with pytest.raises(ci_summary.SummaryError, match="steps.tsv:1"):
        ci_summary.summary(tmp_path, ["gfx950"])
