"""`make export`: upstream-ready branch + mbox with a cover letter."""

from __future__ import annotations

from queue_fixtures import SERVER_ARGS, UTILS, change, commit, make_project

from scripts.patchqueue.apply import run_apply
from scripts.patchqueue.export import run_export
from scripts.patchqueue.gitutil import out
from scripts.patchqueue.refresh import run_refresh


def test_export_branch_and_mbox(tmp_path):
    cfg = make_project(tmp_path)
    run_apply(cfg)
    commit(cfg.tree, change(SERVER_ARGS, "value + 5", "value + 55")(cfg), "for upstream")
    commit(
        cfg.tree,
        change(UTILS, "CONST_4 = 4", "CONST_4 = 44")(cfg),
        "fork only",
        status="Upstream-Status: Inappropriate [image pin]",
    )
    commit(
        cfg.tree,
        change(UTILS, "CONST_20 = 20", "CONST_20 = 2000")(cfg),
        "already sent",
        status="Upstream-Status: Submitted [https://example.invalid/pr/1]",
    )
    run_refresh(cfg)
    report = run_export(cfg)
    assert report.data["exported"] == ["0001-for-upstream.patch", "0003-already-sent.patch"]
    assert report.data["kept"] == ["0002-fork-only.patch"]
    mbox = (cfg.export_dir / "nsa-fp8.mbox").read_text()
    assert "Subject: [PATCH 0/2] " in mbox
    assert "[1/2] for upstream\n      Upstream-Status: Pending" in mbox
    assert "Upstream-Status: Submitted [https://example.invalid/pr/1]" in mbox
    assert "0002-fork-only.patch: fork only (Upstream-Status: Inappropriate [image pin])" in mbox
    assert "Subject: [PATCH 2/2] already sent" in mbox
    msgs = out(cfg.tree, "log", "--format=%B", f"{cfg.base_ref}..nsa-fp8-upstream")
    assert "Upstream-Status" not in msgs and "Why:" in msgs
    assert "CONST_4 = 44" not in out(cfg.tree, "show", f"nsa-fp8-upstream:{UTILS}")
