"""The queue never loses work: every refusal and every piece of advice, on real git repositories.

The first test replays the sequence a newcomer hit: a failed `make apply`, the advised
`git am --abort`, `make apply` again, then `make refresh`, which used to delete every patch file.
"""

from __future__ import annotations

import json

import pytest
from queue_fixtures import SERVER_ARGS, UTILS, change, commit, edited, make_project, queue_with

from scripts.patchqueue.apply import QueueError, run_apply
from scripts.patchqueue.check import run_check
from scripts.patchqueue.cli import main
from scripts.patchqueue.gitutil import am_in_progress, git, out, rev
from scripts.patchqueue.refresh import run_refresh


@pytest.fixture
def cfg(tmp_path):
    """Three patches, committed in the project, applied in the tree."""
    cfg = make_project(tmp_path)
    queue_with(
        cfg,
        (change(SERVER_ARGS, "value + 4", "value + 44"), "server_args: option 4"),
        (change(UTILS, "CONST_9 = 9", "CONST_9 = 99"), "utils: CONST_9"),
        (change(UTILS, "CONST_20 = 20", "CONST_20 = 2000"), "utils: CONST_20"),
    )
    git(cfg.root, "add", "patches")
    git(cfg.root, "commit", "-q", "-m", "queue")
    return cfg


def patch_files(cfg):
    return {p.name: p.read_bytes() for p in sorted(cfg.patches_dir.iterdir())}


def second(cfg):
    return cfg.patches_dir / "0002-utils-CONST_9.patch"


def n_commits(cfg):
    return len(out(cfg.tree, "rev-list", f"{cfg.base_ref}..{cfg.branch}").split())


def cli(cfg, *args):
    return main(["--root", str(cfg.root), *args])


def test_failed_apply_abort_apply_refresh_keeps_every_patch_file(cfg, capsys):
    # A hand edit that makes patch 2's context wrong: apply stops there.
    second(cfg).write_text(second(cfg).read_text().replace(" CONST_8 = 8", " CONST_8 = 800"))
    before = patch_files(cfg)
    assert cli(cfg, "apply", "--force") == 1
    advice = capsys.readouterr().out
    assert "git am --abort" in advice and "git am --continue" in advice
    # The advice says what --abort leads to, and it is true: back at the base, 0 commits.
    assert f"{cfg.branch} goes back to {cfg.base_ref}" in advice
    git(cfg.tree, "am", "--abort")
    assert n_commits(cfg) == 0

    # apply again: the branch (0 commits) holds nothing the files lack, so it does not send the
    # user to `make refresh`; it rebuilds and stops at the same patch again.
    assert cli(cfg, "apply") == 1
    text = capsys.readouterr()
    assert "make refresh` (writes" not in text.out + text.err
    assert "rebuilding it" in text.out
    git(cfg.tree, "am", "--abort")

    # refresh with 0 of 3 commits refuses and names every file it would have deleted.
    assert cli(cfg, "refresh") == 1
    err = capsys.readouterr().err
    assert "holds 0 commit(s) but patches/series lists 3" in err
    for name in before:
        if name != "series":
            assert f"patches/{name}" in err
    assert "make apply" in err and "ALLOW_DROP=1" in err
    assert patch_files(cfg) == before  # not a byte lost, the hand edit included


def test_refresh_with_fewer_commits_needs_allow_drop(cfg):
    git(cfg.tree, "reset", "-q", "--hard", f"{cfg.branch}~1")  # drop patch 3 from the branch
    with pytest.raises(QueueError, match="0003-utils-CONST_20.patch"):
        run_refresh(cfg)
    assert (cfg.patches_dir / "0003-utils-CONST_20.patch").is_file()
    report = run_refresh(cfg, allow_drop=True)
    assert report.data["removed"] == ["0003-utils-CONST_20.patch"]
    assert not (cfg.patches_dir / "0003-utils-CONST_20.patch").exists()


def test_hand_edited_patch_file_is_not_overwritten(cfg):
    path = second(cfg)
    path.write_text(path.read_text().replace("+CONST_9 = 99", "+CONST_9 = 98"))
    edit = path.read_bytes()
    with pytest.raises(QueueError, match="edited by hand") as exc:
        run_refresh(cfg)
    assert "patches/0002-utils-CONST_9.patch" in str(exc.value)
    assert "make apply FORCE=1" in str(exc.value)
    assert path.read_bytes() == edit
    # The branch is untouched since it was built, so apply takes the edit (saving the branch)...
    report = run_apply(cfg)
    assert rev(cfg.tree, report.data["backup_branch"])
    assert "CONST_9 = 98" in (cfg.tree / UTILS).read_text()
    # ... and refresh keeps it (it only rewrites the blob ids the hand edit left stale).
    run_refresh(cfg)
    assert "+CONST_9 = 98" in path.read_text()
    assert run_refresh(cfg).data["written"] == []


def test_hand_edit_can_be_discarded_on_purpose(cfg):
    path = second(cfg)
    original = path.read_bytes()
    path.write_text(path.read_text().replace("+CONST_9 = 99", "+CONST_9 = 98"))
    report = run_refresh(cfg, allow_drop=True)
    assert report.data["written"] == ["0002-utils-CONST_9.patch"]
    assert path.read_bytes() == original


def test_commit_changed_in_the_tree_wins_over_its_file(cfg):
    """The normal edit workflow is not a hand edit: the file is what refresh last wrote."""
    git(cfg.tree, "checkout", "-q", "-b", "edit", f"{cfg.branch}~1")
    git(cfg.tree, "checkout", "-q", cfg.branch)
    text = (cfg.tree / UTILS).read_text().replace("CONST_20 = 2000", "CONST_20 = 2001")
    (cfg.tree / UTILS).write_text(text)
    git(cfg.tree, "commit", "-q", "-a", "--amend", "--no-edit")
    report = run_refresh(cfg)
    assert report.data["written"] == ["0003-utils-CONST_20.patch"]
    assert "+CONST_20 = 2001" in (cfg.patches_dir / "0003-utils-CONST_20.patch").read_text()


def test_both_sides_changed_is_refused_by_apply_and_refresh(cfg):
    commit(cfg.tree, edited(cfg, UTILS, "CONST_1 = 1", "CONST_1 = 11"), "new work")
    path = second(cfg)
    path.write_text(path.read_text().replace("+CONST_9 = 99", "+CONST_9 = 98"))
    with pytest.raises(QueueError, match="Both sides changed") as exc:
        run_apply(cfg)
    assert "0002-utils-CONST_9.patch" in str(exc.value)
    with pytest.raises(QueueError, match="edited by hand"):
        run_refresh(cfg)
    assert "+CONST_9 = 98" in path.read_text()
    assert out(cfg.tree, "log", "-1", "--format=%s", cfg.branch) == "new work"


def corrupt_second(cfg):
    """Drop one context line of patch 2's hunk: its line counts no longer match its body."""
    path = second(cfg)
    lines = path.read_text().splitlines(keepends=True)
    (i,) = [k for k, ln in enumerate(lines) if ln == " CONST_11 = 11\n"]
    path.write_text("".join(lines[:i] + lines[i + 1 :]))


def test_corrupt_patch_is_named_once_and_apply_and_check_agree(cfg, capsys):
    corrupt_second(cfg)
    assert cli(cfg, "check") == 1
    checked = json.loads((cfg.reports_dir / "queue-check.json").read_text())
    check_printed = capsys.readouterr()
    assert (check_printed.out + check_printed.err).count("not a valid diff:") == 1
    assert cli(cfg, "apply", "--force") == 1
    applied = json.loads((cfg.reports_dir / "queue-apply.json").read_text())
    printed = capsys.readouterr()

    (a,) = applied["problems"]
    (c,) = [p for p in checked["problems"] if p["kind"] == "corrupt-patch"]
    assert a == c  # same patch, file, hunk and message (with the patch file's line)
    assert (a["patch"], a["file"], a["hunk"]) == ("0002-utils-CONST_9.patch", UTILS, 1)
    assert "line " in a["message"]
    both = printed.out + printed.err
    assert both.count("not a valid diff:") == 1  # printed once
    # Nothing to `git am --continue`: the session is closed, patch 1 stays applied.
    assert "git am --continue" not in both
    assert am_in_progress(cfg.tree) is None
    assert n_commits(cfg) == 1
    # Restoring the file, as the advice says, and `make apply` again: no FORCE needed.
    assert "git checkout -- patches/0002-utils-CONST_9.patch" in both
    git(cfg.root, "checkout", "--", "patches/0002-utils-CONST_9.patch")
    assert run_apply(cfg).ok and n_commits(cfg) == 3


def test_context_failure_advice_works_when_followed(cfg, capsys):
    """A hunk whose context is not in the tree: fix the tree, `git am --continue`, refresh."""
    path = second(cfg)
    path.write_text(path.read_text().replace(" CONST_8 = 8", " CONST_8 = 800"))
    assert cli(cfg, "apply", "--force") == 1
    report = json.loads((cfg.reports_dir / "queue-apply.json").read_text())
    (problem,) = report["problems"]
    assert (problem["kind"], problem["file"], problem["hunk"]) == ("does-not-apply", UTILS, 1)
    assert am_in_progress(cfg.tree) == "git am"
    text = (cfg.tree / UTILS).read_text().replace("CONST_9 = 9\n", "CONST_9 = 99\n")
    (cfg.tree / UTILS).write_text(text)
    git(cfg.tree, "add", UTILS)
    git(cfg.tree, "am", "--continue")
    assert n_commits(cfg) == 3
    report = run_refresh(cfg)
    assert report.data["written"] == ["0002-utils-CONST_9.patch"]
    assert " CONST_8 = 8\n" in path.read_text()
    assert run_check(cfg).ok
