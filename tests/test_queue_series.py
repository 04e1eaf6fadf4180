"""Several series, one per upstream base (SERIES=...): each its own pins, patch dir and tree."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from queue_fixtures import UTILS, add_series, commit, edited, make_project, queue_with, wheel_of

from scripts.patchqueue.apply import run_apply
from scripts.patchqueue.cli import main
from scripts.patchqueue.config import REPO_ROOT, QueueConfig, pin_key
from scripts.patchqueue.gitutil import out, rev
from scripts.patchqueue.source import wheel_target_args
from scripts.pins import PinError

BINARY = "sglang-0.0.2-cp311-cp311-manylinux_2_34_x86_64.whl"


@pytest.fixture
def two(tmp_path):
    """The default series with one patch, and an empty second series v0.0.2."""
    cfg = make_project(tmp_path)
    queue_with(cfg, (edited(cfg, UTILS, "CONST_1 = 1", "CONST_1 = 11"), "utils: CONST_1"))
    name, wheel = add_series(cfg, "0.0.2", BINARY)
    return QueueConfig.for_root(cfg.root), name, wheel


def cli(cfg, *args):
    return main(["--root", str(cfg.root), *args])


def test_second_series_has_its_own_pins_dir_and_tree(two):
    default, name, wheel = two
    cfg = QueueConfig.for_root(default.root, name)
    assert cfg.patches_dir == default.root / "patches-v0.0.2"
    assert cfg.tree == default.root / "build" / "sglang-v0.0.2"
    assert (cfg.base_ref, cfg.key("WHEEL_SHA256")) == (
        "upstream/v0.0.2",
        "SGLANG_V0_0_2_WHEEL_SHA256",
    )
    assert default.patches_dir == default.root / "patches"  # the default stays where it was
    assert default.tree == default.root / "build" / "sglang"
    assert QueueConfig.for_root(default.root, default.tag).tree == default.tree


def test_empty_series_sources_applies_and_checks(two):
    default, name, wheel = two
    head = rev(default.tree, default.branch)
    assert cli(default, "--series", name, "source", "--wheel-file", str(wheel)) == 0
    assert cli(default, "--series", name, "apply") == 0
    assert cli(default, "--series", name, "check") == 0
    cfg = QueueConfig.for_root(default.root, name)
    assert rev(cfg.tree, cfg.branch) == rev(cfg.tree, "upstream/v0.0.2")  # bare base
    assert '"0.0.2"' in (cfg.tree / "python/sglang/__init__.py").read_text()
    report = json.loads((cfg.reports_dir / "queue-check-v0.0.2.json").read_text())
    assert report["ok"] and report["patches"] == []
    # The default series' tree, branch and report paths are untouched.
    assert rev(default.tree, default.branch) == head
    assert not (cfg.reports_dir / "queue-check.json").exists()


def test_refresh_writes_into_the_series_own_dir(two):
    default, name, wheel = two
    cfg = QueueConfig.for_root(default.root, name)
    cli(default, "--series", name, "source", "--wheel-file", str(wheel))
    run_apply(cfg)
    commit(cfg.tree, edited(cfg, UTILS, "CONST_2 = 2", "CONST_2 = 22"), "utils: CONST_2")
    before = sorted(p.name for p in default.patches_dir.iterdir())
    assert cli(default, "--series", name, "refresh") == 0
    assert (cfg.patches_dir / "0001-utils-CONST_2.patch").is_file()
    assert cfg.series.read_text().splitlines()[-1] == "0001-utils-CONST_2.patch"
    assert sorted(p.name for p in default.patches_dir.iterdir()) == before


def test_all_runs_every_series_and_refuses_refresh(two, capsys):
    default, name, wheel = two
    cli(default, "--series", name, "source", "--wheel-file", str(wheel))
    assert cli(default, "--series", "all", "apply") == 0
    assert cli(default, "--series", "all", "check") == 0
    assert "--- series v0.0.2" in capsys.readouterr().out
    cfg = QueueConfig.for_root(default.root, name)
    assert rev(cfg.tree, cfg.branch) and rev(default.tree, default.branch)
    assert cli(default, "--series", "all", "refresh") == 1
    assert "works on one series" in capsys.readouterr().err


def test_one_local_wheel_for_all_series(two, capsys):
    """SERIES=all with SGLANG_WHEEL_FILE: the file serves its own series, the others fetch theirs
    (here from the download cache, so the test needs no network)."""
    default, name, wheel = two
    cfg = QueueConfig.for_root(default.root, name)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    (cfg.cache_dir / BINARY).write_bytes(wheel.read_bytes())
    assert cli(default, "--series", "all", "source", "--wheel-file", str(wheel_of(default))) == 0
    assert f"(this series pins {BINARY})" in capsys.readouterr().out
    assert rev(cfg.tree, cfg.base_ref)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.replace("SGLANG_V0_0_2_TAG=v0.0.2", "SGLANG_V0_0_2_TAG=v9"), "named after"),
        (lambda t: t.replace("SGLANG_V0_0_2_WHEEL_SHA256=", "X="), "SGLANG_V0_0_2_WHEEL_SHA256"),
        (lambda t: t.replace("QUEUE_SERIES=v0.0.1,", "QUEUE_SERIES="), "list v0.0.1 first"),
    ],
)
def test_bad_series_pins_are_named(two, edit, match):
    default, name, _ = two
    lock = default.root / "versions.env"
    lock.write_text(edit(lock.read_text()))
    with pytest.raises(PinError, match=match):
        QueueConfig.for_root(default.root, name)


def test_unknown_series_lists_the_known_ones(two):
    with pytest.raises(PinError, match="v0.0.1, v0.0.2"):
        QueueConfig.for_root(two[0].root, "v7")


def test_binary_wheel_is_fetched_by_its_tags():
    assert wheel_target_args("sglang-0.5.9-py3-none-any.whl") == []
    args = wheel_target_args("sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl")
    assert args == [
        "--platform",
        "manylinux_2_34_x86_64",
        "--abi",
        "cp311",
        "--implementation",
        "cp",
        "--python-version",
        "3.11",
    ]


def test_pin_keys():
    assert pin_key("v0.5.23", "v0.5.9", "WHEEL") == "SGLANG_V0_5_23_WHEEL"
    assert pin_key("v0.5.9", "v0.5.9", "WHEEL") == "SGLANG_WHEEL"


def test_project_declares_both_series_and_make_passes_series():
    cfgs = [QueueConfig.for_root(REPO_ROOT, s) for s in ("v0.5.9", "v0.5.23")]
    assert [c.patches_dir.name for c in cfgs] == ["patches", "patches-v0.5.23"]
    assert [c.tree.name for c in cfgs] == ["sglang", "sglang-v0.5.23"]
    assert cfgs[1].pin("VERSION") == "0.5.23" and cfgs[1].series.is_file()
    for c in cfgs:
        assert c.pin("WHEEL").startswith(f"sglang-{c.pin('VERSION')}-")
        assert re.fullmatch(r"[0-9a-f]{64}", c.pin("WHEEL_SHA256"))
        assert c.tag == "v" + c.pin("VERSION")

    def dry(*args):
        proc = subprocess.run(["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return proc.stdout

    assert "--series v0.5.23 apply" in dry("apply", "SERIES=v0.5.23")
    assert "--series v0.5.9 apply" in dry("apply")
    assert "--series all apply" in dry("test")
    assert "check SERIES=all" in dry("all")
    assert "--series v0.5.23 format" in dry("queue-format", "SERIES=v0.5.23")
    assert out(REPO_ROOT, "ls-files", "patches-v0.5.23/series") or cfgs[1].series.is_file()
