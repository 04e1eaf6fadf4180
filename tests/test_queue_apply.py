"""`make apply`: git am of the series; refuses to clobber work; names what failed."""

from __future__ import annotations

import json

import pytest
from queue_fixtures import SERVER_ARGS, UTILS, change, commit, make_project, queue_with

from scripts.patchqueue.apply import QueueError, run_apply
from scripts.patchqueue.cli import main
from scripts.patchqueue.gitutil import am_in_progress, out, rev


@pytest.fixture
def cfg(tmp_path):
    cfg = make_project(tmp_path)
    queue_with(
        cfg,
        (change(SERVER_ARGS, "value + 4", "value + 44"), "server_args: option 4"),
        (change(UTILS, "CONST_9 = 9", "CONST_9 = 99"), "utils: CONST_9"),
    )
    return cfg


def log(cfg):
    return out(cfg.tree, "log", "--format=%s", f"{cfg.base_ref}..{cfg.branch}").splitlines()


def test_fresh_apply_lists_patches_and_writes_report(cfg, capsys):
    assert main(["--root", str(cfg.root), "apply"]) == 0  # second run: nothing to do
    report = json.loads((cfg.reports_dir / "queue-apply.json").read_text())
    assert report["ok"] and report["up_to_date"]
    assert [p["name"] for p in report["patches"]] == [
        "0001-server_args-option-4.patch",
        "0002-utils-CONST_9.patch",
    ]
    assert log(cfg) == ["utils: CONST_9", "server_args: option 4"]
    assert "nothing to do" in capsys.readouterr().out


def test_reapply_is_a_no_op(cfg):
    head = rev(cfg.tree, cfg.branch)
    report = run_apply(cfg)
    assert report.data["up_to_date"] is True
    assert rev(cfg.tree, cfg.branch) == head


def test_apply_is_reproducible(cfg):
    """Same queue, same base: same commit ids (fixed committer, committer date = author date)."""
    heads = []
    for _ in range(2):
        out(cfg.tree, "checkout", "-q", "--detach")
        out(cfg.tree, "branch", "-D", cfg.branch)
        run_apply(cfg)
        heads.append(rev(cfg.tree, cfg.branch))
    assert heads[0] == heads[1]


def test_dirty_tree_is_refused_and_kept(cfg):
    path = cfg.tree / UTILS
    path.write_text(path.read_text() + "# my edit\n")
    with pytest.raises(QueueError, match="uncommitted changes"):
        run_apply(cfg)
    assert path.read_text().endswith("# my edit\n")


def test_differing_branch_is_refused_then_saved_with_force(cfg):
    commit(cfg.tree, {UTILS: "CONST = 1\n"}, "work in progress")
    wip = rev(cfg.tree, cfg.branch)
    with pytest.raises(QueueError, match="make refresh"):
        run_apply(cfg)
    assert rev(cfg.tree, cfg.branch) == wip
    report = run_apply(cfg, force=True)
    assert rev(cfg.tree, report.data["backup_branch"]) == wip
    assert log(cfg) == ["utils: CONST_9", "server_args: option 4"]


def test_failing_patch_is_named_with_file_and_hunk(cfg):
    second = cfg.patches_dir / "0002-utils-CONST_9.patch"
    second.write_text(second.read_text().replace(" CONST_8 = 8", " CONST_8 = 800"))
    run_apply_failed = main(["--root", str(cfg.root), "apply", "--force"])
    assert run_apply_failed == 1
    report = json.loads((cfg.reports_dir / "queue-apply.json").read_text())
    (problem,) = report["problems"]
    assert problem["patch"] == "0002-utils-CONST_9.patch"
    assert problem["file"] == UTILS
    assert problem["hunk"] == 1
    assert report["failed"]["index"] == 2
    assert [p["name"] for p in report["patches"]] == ["0001-server_args-option-4.patch"]
    # Left inspectable: git am stopped at the failing patch, the first one applied.
    assert am_in_progress(cfg.tree) == "git am"
    assert log(cfg) == ["server_args: option 4"]
    with pytest.raises(QueueError, match="git am is in progress"):
        run_apply(cfg)


def test_series_problems_block_apply(cfg):
    (cfg.patches_dir / "extra.patch").write_text("x\n")
    with pytest.raises(QueueError, match="extra.patch is not listed"):
        run_apply(cfg, force=True)


def test_missing_tree_says_make_source(tmp_path):
    cfg = make_project(tmp_path, source=False)
    with pytest.raises(QueueError, match="make source"):
        run_apply(cfg)


def test_bracketed_subject_prefix_survives_the_round_trip(tmp_path):
    cfg = make_project(tmp_path)
    queue_with(cfg, (change(UTILS, "CONST_1 = 1", "CONST_1 = 10"), "[NSA] utils: CONST_1"))
    report = run_apply(cfg)
    assert report.data["up_to_date"] is True
    assert report.data["patches"][0]["subject"] == "[NSA] utils: CONST_1"
    assert log(cfg) == ["[NSA] utils: CONST_1"]
