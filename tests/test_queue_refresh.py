"""`make refresh`: the same commits always give byte-identical patches/."""

from __future__ import annotations

import re

import pytest
from queue_fixtures import SERVER_ARGS, UTILS, change, commit, make_project, queue_with, run

from scripts.patchqueue.apply import QueueError, run_apply
from scripts.patchqueue.gitutil import git
from scripts.patchqueue.refresh import run_refresh, whole_word_slug


def snapshot(cfg):
    return {p.name: p.read_bytes() for p in sorted(cfg.patches_dir.iterdir())}


def changes():
    return (
        (change(SERVER_ARGS, "value + 6", "value + 66"), "server_args: option 6"),
        (change(UTILS, "CONST_2 = 2", "CONST_2 = 22"), "utils: CONST_2 [fixup]"),
    )


def test_apply_then_refresh_is_byte_stable(tmp_path):
    cfg = make_project(tmp_path)
    queue_with(cfg, *changes())
    git(cfg.root, "add", "patches")
    git(cfg.root, "commit", "-q", "-m", "queue")
    before = snapshot(cfg)
    # A fresh apply from the files, then a refresh: nothing may change, not even a byte.
    git(cfg.tree, "checkout", "-q", "--detach")
    git(cfg.tree, "branch", "-D", cfg.branch)
    run_apply(cfg)
    report = run_refresh(cfg)
    assert report.data["written"] == [] and report.data["removed"] == []
    assert snapshot(cfg) == before
    assert run(["git", "status", "--porcelain", "patches"], cfg.root).stdout == ""


def test_refresh_is_the_same_in_two_checkouts(tmp_path):
    a = make_project(tmp_path, "a")
    b = make_project(tmp_path, "b")
    queue_with(a, *changes())
    queue_with(b, *changes())
    assert snapshot(a) == snapshot(b)
    assert (
        b"From 0000000000000000000000000000000000000000 "
        in snapshot(a)["0001-server_args-option-6.patch"]
    )


def test_refresh_follows_renames_and_keeps_series_header(tmp_path):
    cfg = make_project(tmp_path)
    cfg.series.write_text("# my header\n# second line\n")
    queue_with(cfg, *changes())
    git(
        cfg.tree,
        "commit",
        "-q",
        "--amend",
        "-m",
        "utils: better subject\n\nWhy: x.\n\nUpstream-Status: Pending\n",
    )
    report = run_refresh(cfg)
    assert report.data["removed"] == ["0002-utils-CONST_2-fixup.patch"]
    assert cfg.series.read_text() == (
        "# my header\n# second line\n"
        "0001-server_args-option-6.patch\n0002-utils-better-subject.patch\n"
    )
    assert sorted(p.name for p in cfg.patches_dir.glob("*.patch")) == [
        "0001-server_args-option-6.patch",
        "0002-utils-better-subject.patch",
    ]


def test_refresh_refuses_uncommitted_work(tmp_path):
    cfg = make_project(tmp_path)
    queue_with(cfg, *changes())
    (cfg.tree / UTILS).write_text("changed\n")
    with pytest.raises(QueueError, match="uncommitted changes"):
        run_refresh(cfg)


def test_new_commit_becomes_a_new_patch(tmp_path):
    cfg = make_project(tmp_path)
    queue_with(cfg, *changes())
    commit(cfg.tree, {"python/sglang/srt/new_module.py": "X = 1\n"}, "add new_module")
    report = run_refresh(cfg)
    assert report.data["written"] == ["0003-add-new_module.patch"]
    assert cfg.series.read_text().splitlines()[-1] == "0003-add-new_module.patch"


def test_file_names_are_cut_at_a_word_boundary(tmp_path):
    cfg = make_project(tmp_path)
    subject = "[NSA] tilelang: never gather KV row -1 in the bf16 sparse kernels"
    (name,) = queue_with(cfg, (change(UTILS, "CONST_3 = 3", "CONST_3 = 33"), subject))
    # git alone cuts this one mid-word: 0001-NSA-tilelang-never-gather-KV-row-1-in-the-bf16-spars
    assert name == "0001-NSA-tilelang-never-gather-KV-row-1-in-the-bf16.patch"
    slug = name[len("0001-") : -len(".patch")]
    words = set(re.split(r"[^A-Za-z0-9_]+", subject))
    assert all(w in words for w in slug.split("-")), slug
    # Apply then refresh right after: unchanged.
    git(cfg.tree, "checkout", "-q", "--detach")
    git(cfg.tree, "branch", "-D", cfg.branch)
    run_apply(cfg)
    assert run_refresh(cfg).data["written"] == []


@pytest.mark.parametrize(
    ("slug", "cut"),
    [
        ("short-subject", "short-subject"),
        ("a" * 60, "a" * 52),  # one word longer than the limit: cut where it must be
        ("x-" + "y" * 55, "x"),
        ("word-" * 10 + "tail-end", "word-" * 9 + "word"),  # "word-word...-tail" is 54 long
    ],
)
def test_whole_word_slug(slug, cut):
    assert whole_word_slug(slug) == cut
    assert len(whole_word_slug(slug)) <= 52
