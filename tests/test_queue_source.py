"""`make source`: wheel route (sha256, RECORD, reproducible base) and git route (RECORD check)."""

from __future__ import annotations

import shutil

import pytest
from queue_fixtures import (
    SERVER_ARGS,
    UPSTREAM,
    change,
    make_git_upstream,
    make_project,
    queue_with,
    wheel_of,
)

from scripts.patchqueue.gitutil import git, rev
from scripts.patchqueue.source import SourceError, read_record, run_source, verify_against_record


def test_base_commit_is_reproducible_and_rerun_is_a_no_op(tmp_path, capsys):
    a = make_project(tmp_path, "a")
    b = make_project(tmp_path, "b")
    assert rev(a.tree, a.base_ref) == rev(b.tree, b.base_ref)
    assert (a.tree / SERVER_ARGS).read_text() == UPSTREAM["sglang/srt/server_args.py"]
    report = run_source(a, "wheel", wheel_of(a))
    assert "nothing to do" in capsys.readouterr().out
    assert report.data["commit"] == rev(a.tree, a.base_ref)


def test_cached_wheel_is_reused_without_the_original(tmp_path):
    cfg = make_project(tmp_path)
    shutil.rmtree(cfg.tree)
    wheel_of(cfg).unlink()  # only build/cache has it now
    run_source(cfg, "wheel")
    assert (cfg.tree / SERVER_ARGS).is_file()


def test_wrong_sha256_is_refused(tmp_path):
    cfg = make_project(tmp_path, source=False)
    cfg.lock["SGLANG_WHEEL_SHA256"] = "0" * 64
    with pytest.raises(SourceError, match="does not match SGLANG_WHEEL_SHA256"):
        run_source(cfg, "wheel", wheel_of(cfg))
    assert not (cfg.cache_dir / "sglang-0.0.1-py3-none-any.whl").exists()


def test_record_is_decoded_to_hex_sha256(tmp_path):
    cfg = make_project(tmp_path, source=False)
    record = read_record(wheel_of(cfg))
    import hashlib

    assert (
        record["sglang/srt/utils.py"]
        == hashlib.sha256(UPSTREAM["sglang/srt/utils.py"].encode()).hexdigest()
    )


def test_git_route_matches_the_wheel(tmp_path):
    make_git_upstream(tmp_path / "upstream", UPSTREAM)
    cfg = make_project(tmp_path, source=False)
    report = run_source(cfg, "git", wheel_of(cfg))
    assert report.ok
    assert (cfg.tree / "README.md").is_file()  # the whole repository, not only the package
    assert (cfg.tree / SERVER_ARGS).read_text() == UPSTREAM["sglang/srt/server_args.py"]


def test_record_comparison_flags_files_the_series_touches(tmp_path):
    files = dict(UPSTREAM)
    files["sglang/srt/server_args.py"] += "# the tag moved\n"
    files["sglang/srt/extra.py"] = "EXTRA = 1\n"
    make_git_upstream(tmp_path / "upstream", files)
    cfg = make_project(tmp_path)
    git(cfg.tree, "fetch", "-q", (tmp_path / "upstream").as_uri(), "refs/tags/v0.0.1")
    record = read_record(wheel_of(cfg))
    paths = {
        SERVER_ARGS,
        "python/sglang/srt/utils.py",
        "python/sglang/srt/extra.py",
        "python/sglang/srt/added_by_patch.py",
        "docker/Dockerfile",
    }
    probs = verify_against_record(cfg.tree, "FETCH_HEAD", record, paths)
    found = {(p.file, p.kind, p.severity) for p in probs}
    assert found == {
        (SERVER_ARGS, "record-mismatch", "error"),
        ("python/sglang/srt/extra.py", "record-mismatch", "error"),
        ("docker/Dockerfile", "not-in-wheel", "warning"),
    }


def test_git_route_refuses_a_moved_tag(tmp_path):
    files = dict(UPSTREAM)
    files["sglang/srt/server_args.py"] += "# the tag moved\n"
    make_git_upstream(tmp_path / "upstream", files)
    cfg = make_project(tmp_path)  # wheel route, to make a patch touching server_args
    queue_with(cfg, (change(SERVER_ARGS, "value + 1", "value + 10"), "touch server_args"))
    shutil.rmtree(cfg.tree)
    with pytest.raises(SourceError, match="differs from the pinned wheel"):
        run_source(cfg, "git", wheel_of(cfg))


def test_unknown_route_and_foreign_directory(tmp_path):
    cfg = make_project(tmp_path, source=False)
    with pytest.raises(SourceError, match="SGLANG_SOURCE"):
        run_source(cfg, "svn")
    cfg.tree.mkdir(parents=True)
    (cfg.tree / "something").write_text("x")
    with pytest.raises(SourceError, match="not a git repository"):
        run_source(cfg, "wheel", wheel_of(cfg))
