"""The project's own wiring: the pin file, `make help`, CI entry, and the real queue."""

from __future__ import annotations

import re
import subprocess

import pytest

from scripts.patchqueue.check import run_check
from scripts.patchqueue.config import REPO_ROOT, QueueConfig, series_names
from scripts.pins import PinError, read_pins

TARGET = re.compile(r"^([a-zA-Z0-9_.-]+):(?!=)([^#\n=]*)(## (.*))?$", re.M)


def test_lock_has_the_pins_the_queue_needs():
    lock = read_pins()
    assert lock["SGLANG_TAG"] == "v" + lock["SGLANG_VERSION"]
    assert re.fullmatch(r"[0-9a-f]{64}", lock["SGLANG_WHEEL_SHA256"])
    assert lock["SGLANG_WHEEL"] == f"sglang-{lock['SGLANG_VERSION']}-py3-none-any.whl"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("A=1\nA=2\n", "pinned twice"),
        ('A="1"\n', "not KEY=value"),
        ("export A=1\n", "not KEY=value"),
        ("A = 1\n", "not KEY=value"),
    ],
)
def test_lock_rejects_what_make_would_read_differently(tmp_path, text, match):
    (tmp_path / "v.env").write_text("# ok\n\n" + text)
    with pytest.raises(PinError, match=match):
        read_pins(tmp_path / "v.env")


def test_make_help_describes_every_target():
    files = [REPO_ROOT / "Makefile", *sorted((REPO_ROOT / "mk").glob("*.mk"))]
    described = {}
    for f in files:
        for m in TARGET.finditer(f.read_text()):
            if m.group(1) not in (".PHONY",) and "$" not in m.group(1):
                described[m.group(1)] = m.group(4)
    mine = [REPO_ROOT / "Makefile", REPO_ROOT / "mk/queue.mk", REPO_ROOT / "mk/env.mk"]
    for f in mine:
        for m in TARGET.finditer(f.read_text()):
            if m.group(1) != ".PHONY":
                assert m.group(4), f"{f.name}: target {m.group(1)} has no '## description'"
    out = subprocess.run(["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name, desc in described.items():
        if desc:
            assert re.search(rf"^  {re.escape(name)} +{re.escape(desc)}$", out.stdout, re.M), name


def test_ci_runs_the_readme_test_command():
    run = (REPO_ROOT / ".ci" / "run").read_text()
    assert run.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in run
    assert [ln for ln in run.splitlines() if ln and not ln.startswith(("#", "set ", "cd "))] == [
        "make test"
    ]
    assert "make test" in (REPO_ROOT / "README.md").read_text()


@pytest.mark.parametrize("series", series_names(read_pins()))
def test_the_real_queue_passes_check(series):
    """Each series against its real base (`make test` applies every series first)."""
    cfg = QueueConfig.for_root(REPO_ROOT, series)
    if not (cfg.tree / ".git").exists():
        pytest.fail(f"no upstream tree at {cfg.tree}: run `make apply SERIES={series}`")
    report = run_check(cfg)
    assert report.ok, "\n".join(str(p) for p in report.problems)


def test_make_check_runs_the_queue_check_before_building_the_venv():
    """On a fresh clone `make check` answers about the queue in seconds, not after `make env`."""
    proc = subprocess.run(["make", "-n", "check"], cwd=REPO_ROOT, capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    queue = next(i for i, ln in enumerate(lines) if "scripts.patchqueue" in ln and " check" in ln)
    env = next(i for i, ln in enumerate(lines) if "setup_env.sh" in ln)
    assert queue < env, proc.stdout
