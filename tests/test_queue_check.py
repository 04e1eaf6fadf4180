"""`make check` on real git repositories: each rule must catch its defect and name the patch."""

from __future__ import annotations

import json

import pytest
from queue_fixtures import (
    SERVER_ARGS,
    UTILS,
    change,
    edited,
    make_project,
    patch_against,
    queue_with,
)

from scripts.patchqueue.check import run_check
from scripts.patchqueue.cli import main
from scripts.patchqueue.series import write_series


def kinds(report, patch=None):
    return {p.kind for p in report.problems if patch is None or p.patch == patch}


@pytest.fixture
def cfg(tmp_path):
    return make_project(tmp_path)


def test_clean_queue_passes_and_writes_report(cfg):
    names = queue_with(
        cfg,
        (edited(cfg, SERVER_ARGS, "value + 3", "value + 33"), "server_args: option 3 adds 33"),
        (edited(cfg, UTILS, "CONST_5 = 5", "CONST_5 = 55"), "utils: CONST_5 is 55"),
    )
    assert main(["--root", str(cfg.root), "check"]) == 0
    report = json.loads((cfg.reports_dir / "queue-check.json").read_text())
    assert report["ok"] is True
    assert [p["name"] for p in report["patches"]] == names
    assert all(p["result"] == "ok" for p in report["patches"])


def test_offset_hunk_is_rejected(cfg):
    (first,) = queue_with(
        cfg, (edited(cfg, SERVER_ARGS, "def option_0", "# new\n# lines\n\ndef option_0"), "top")
    )
    # Made against the base, so after `first` its hunk lands 3 lines lower.
    stale = patch_against(cfg, cfg.base_ref, SERVER_ARGS, "value + 8", "value + 88", "stale patch")
    (cfg.patches_dir / "0002-stale-patch.patch").write_bytes(stale)
    write_series(cfg.series, [first, "0002-stale-patch.patch"])
    report = run_check(cfg)
    (offset,) = [p for p in report.problems if p.kind == "offset"]
    assert (offset.patch, offset.file, offset.hunk) == (
        "0002-stale-patch.patch",
        SERVER_ARGS,
        1,
    )
    assert not report.ok


def test_context_mismatch_names_patch_file_and_hunk(cfg):
    text = edited(cfg, SERVER_ARGS, "value + 2", "value + 22")[SERVER_ARGS]
    text = text.replace("value + 9", "value + 99")
    (name,) = queue_with(cfg, ({SERVER_ARGS: text}, "two hunks"))
    path = cfg.patches_dir / name
    # Corrupt one context line of the second hunk: fuzz would accept it, the queue must not.
    path.write_text(path.read_text().replace(" def option_9(value):", " def option_9(val):"))
    report = run_check(cfg)
    (bad,) = [p for p in report.problems if p.kind == "does-not-apply"]
    assert (bad.patch, bad.file, bad.hunk) == (name, SERVER_ARGS, 2)


def test_unlisted_duplicate_and_missing_entries(cfg):
    (name,) = queue_with(cfg, (edited(cfg, UTILS, "CONST_1 = 1", "CONST_1 = 11"), "one"))
    (cfg.patches_dir / "9999-stray.patch").write_text("stray\n")
    write_series(cfg.series, [name, name, "0404-gone.patch"])
    report = run_check(cfg)
    assert {"unlisted-patch", "duplicate-entry", "missing-patch"} <= kinds(report)
    assert kinds(report, "9999-stray.patch") == {"unlisted-patch"}
    assert kinds(report, "0404-gone.patch") == {"missing-patch"}


def test_patch_already_upstream_is_reported(cfg):
    # Base has `already_upstream = True`; a patch that adds exactly that line is upstream already.
    removed = edited(cfg, SERVER_ARGS, "already_upstream = True\n", "")
    queue_with(cfg, (removed, "drop the line"))
    end = "return value + 11\n\n\n"
    data = patch_against(
        cfg, "nsa-fp8", SERVER_ARGS, end, end + "already_upstream = True\n", "re-add"
    )
    (cfg.patches_dir / "0001-re-add.patch").write_bytes(data)
    (cfg.patches_dir / "0001-drop-the-line.patch").unlink()
    write_series(cfg.series, ["0001-re-add.patch"])
    report = run_check(cfg)
    assert "already-upstream" in kinds(report, "0001-re-add.patch")


def test_byte_compile_failure_is_pinpointed_per_patch(cfg):
    broken = edited(cfg, UTILS, "CONST_7 = 7", "CONST_7 = (7")
    names = queue_with(
        cfg,
        (edited(cfg, SERVER_ARGS, "value + 1", "value - 1"), "fine"),
        (broken, "breaks utils"),
        (change(UTILS, "CONST_7 = (7", "CONST_7 = 7"), "repairs utils"),
    )
    report = run_check(cfg)
    (bad,) = [p for p in report.problems if p.kind == "byte-compile"]
    # The last patch repairs the file, so only a per-patch compile catches the broken middle.
    assert (bad.patch, bad.file) == (names[1], UTILS)
    assert bad.line is not None


def test_trailing_whitespace_is_an_error(cfg):
    (name,) = queue_with(cfg, (edited(cfg, UTILS, "CONST_3 = 3", "CONST_3 = 3   "), "spaces"))
    report = run_check(cfg)
    assert kinds(report, name) == {"whitespace"}


def test_cli_exit_code_and_report_on_failure(cfg):
    (cfg.patches_dir / "stray.patch").write_text("x\n")
    assert main(["--root", str(cfg.root), "check"]) == 1
    report = json.loads((cfg.reports_dir / "queue-check.json").read_text())
    assert report["ok"] is False
    assert report["problems"][0]["kind"] == "unlisted-patch"


def test_missing_base_is_an_error(tmp_path):
    cfg = make_project(tmp_path, source=False)
    report = run_check(cfg)
    assert kinds(report) == {"no-base"}
    assert "make source" in report.problems[0].message
