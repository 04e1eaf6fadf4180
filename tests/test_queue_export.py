"""`make export`: one PR branch and one mbox (cover letter + patches) per topic, on real repos."""

from __future__ import annotations

import pytest
from queue_fixtures import SERVER_ARGS, UTILS, change, commit, make_project

from scripts.patchqueue.apply import QueueError, run_apply
from scripts.patchqueue.export import run_export
from scripts.patchqueue.gitutil import git, out
from scripts.patchqueue.patchfile import lint_header, read_patch
from scripts.patchqueue.refresh import run_refresh

KSCALE = """Scale K on write by the layer's k_scale.

Why: the reader multiplies by k_scale, the writer ignored it.

Evidence: relative L2 5.6 -> 0.02 against float64 (H200).

Test: pytest tests/test_kscale.py

Topic: kscale-contract"""


def add(cfg, edit, subject, body, status="Upstream-Status: Pending"):
    commit(cfg.tree, edit(cfg), subject, body=body, status=status)


@pytest.fixture
def cfg(tmp_path):
    cfg = make_project(tmp_path)
    run_apply(cfg)
    add(cfg, change(UTILS, "CONST_4 = 4", "CONST_4 = 44"), "store: divide by k_scale", KSCALE)
    add(
        cfg,
        change(SERVER_ARGS, "value + 5", "value + 55"),
        "server_args: name the flag",
        "Why: an assert is stripped by python -O.",
    )
    add(
        cfg,
        change(UTILS, "CONST_20 = 20", "CONST_20 = 2000"),
        "decode: multiply by k_scale",
        "Why: the other half of the contract.\n\nTopic: kscale-contract",
        status="Upstream-Status: Submitted [https://example.invalid/pr/1]",
    )
    add(
        cfg,
        change(UTILS, "CONST_7 = 7", "CONST_7 = 77"),
        "image pin",
        "Why: ours only.",
        status="Upstream-Status: Inappropriate [fork only]",
    )
    run_refresh(cfg)
    return cfg


def topic(report, name):
    (t,) = [t for t in report.data["topics"] if t["topic"] == name]
    return t


def test_one_branch_and_mbox_per_topic(cfg):
    report = run_export(cfg)
    assert [t["topic"] for t in report.data["topics"]] == [
        "kscale-contract",
        "server_args-name-the-flag",  # no Topic: line, a topic of its own
    ]
    assert topic(report, "kscale-contract")["patches"] == [
        "0001-store-divide-by-k_scale.patch",
        "0003-decode-multiply-by-k_scale.patch",
    ]
    assert report.data["kept"] == ["0004-image-pin.patch"]
    for t in report.data["topics"]:
        assert t["depends_on"] == []
        # Each branch is the release plus that topic only: a PR on its own.
        subjects = out(cfg.tree, "log", "--format=%s", f"{cfg.base_ref}..{t['branch']}")
        assert len(subjects.splitlines()) == len(t["patches"])
    msgs = out(cfg.tree, "log", "--format=%B", f"{cfg.base_ref}..pr/kscale-contract")
    assert "Upstream-Status" not in msgs and "Topic:" not in msgs and "Why:" in msgs
    tip = out(cfg.tree, "show", f"pr/kscale-contract:{UTILS}")
    assert "CONST_4 = 44" in tip and "CONST_20 = 2000" in tip and "CONST_7 = 77" not in tip


def test_cover_letter_says_what_why_evidence_and_how_to_test(cfg):
    report = run_export(cfg)
    mbox = (cfg.export_dir / cfg.tag / "kscale-contract.mbox").read_text()
    cover = mbox.split("\nFrom 0000000000000000000000000000000000000000 ", 1)[0]
    assert "Subject: [PATCH 0/2] kscale-contract: store: divide by k_scale" in cover
    for part in (
        "What\n----\n[1/2] store: divide by k_scale\n      Scale K on write",
        "[2/2] decode: multiply by k_scale",
        "Why\n---\n[1/2] Why: the reader multiplies by k_scale",
        "[2/2] Why: the other half of the contract.",
        "Evidence\n--------\n[1/2] Evidence: relative L2 5.6 -> 0.02",
        "How to test\n-----------\n[1/2] Test: pytest tests/test_kscale.py",
        f"git rebase --onto origin/main {cfg.base_ref} pr/kscale-contract",
    ):
        assert part in cover, part
    assert "Subject: [PATCH 1/2] store: divide by k_scale" in mbox
    assert "Subject: [PATCH 2/2] decode: multiply by k_scale" in mbox
    # The topic without evidence says so, in the letter and as a warning.
    other = (cfg.export_dir / cfg.tag / "server_args-name-the-flag.mbox").read_text()
    assert "Evidence\n--------\n(none given in the patches)" in other
    warned = {p.message.split(":")[0] for p in report.problems if p.severity == "warning"}
    assert warned == {"topic server_args-name-the-flag"}


def test_topic_that_needs_an_earlier_one_is_stacked_and_says_so(tmp_path):
    cfg = make_project(tmp_path)
    run_apply(cfg)
    add(cfg, change(UTILS, "CONST_4 = 4", "CONST_4 = 44"), "first", "Why: a.\n\nTopic: one")
    add(cfg, change(UTILS, "CONST_4 = 44", "CONST_4 = 45"), "second", "Why: b.\n\nTopic: two")
    run_refresh(cfg)
    report = run_export(cfg)
    assert topic(report, "two")["depends_on"] == ["one"]
    mbox = (cfg.export_dir / cfg.tag / "two.mbox").read_text()
    assert "Depends on the topics before it (open those first): one." in mbox
    assert "Subject: [PATCH 1/1] second" in mbox and "Subject: [PATCH 1/1] first" not in mbox
    assert out(cfg.tree, "show", f"pr/two:{UTILS}").count("CONST_4 = 45") == 1


def test_requires_topic_stacks_a_topic_that_applies_alone(tmp_path):
    """Applying is not working: a topic that imports another's code says Requires-Topic."""
    cfg = make_project(tmp_path)
    run_apply(cfg)
    add(cfg, change(UTILS, "CONST_4 = 4", "CONST_4 = 44"), "kernel", "Why: a.\n\nTopic: kernel")
    add(
        cfg,
        change(SERVER_ARGS, "value + 5", "value + 55"),
        "dispatch",
        "Why: b.\n\nTopic: dispatch\nRequires-Topic: kernel",
    )
    run_refresh(cfg)
    report = run_export(cfg)
    assert topic(report, "dispatch")["depends_on"] == ["kernel"]
    assert "CONST_4 = 44" in out(cfg.tree, "show", f"pr/dispatch:{UTILS}")
    msgs = out(cfg.tree, "log", "--format=%B", f"{cfg.base_ref}..pr/dispatch")
    assert "Requires-Topic" not in msgs


def test_stale_topic_mboxes_are_removed(cfg):
    stale = cfg.export_dir / cfg.tag / "gone.mbox"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("x")
    run_export(cfg)
    assert not stale.exists()


def test_export_refuses_a_topic_that_cannot_apply(tmp_path):
    cfg = make_project(tmp_path)
    run_apply(cfg)
    add(
        cfg,
        change(UTILS, "CONST_4 = 4", "CONST_4 = 44"),
        "ours",
        "Why: x.",
        status="Upstream-Status: Inappropriate [fork]",
    )
    add(cfg, change(UTILS, "CONST_4 = 44", "CONST_4 = 45"), "needs ours", "Why: y.")
    run_refresh(cfg)
    with pytest.raises(QueueError, match="0001-ours.patch"):
        run_export(cfg)


@pytest.mark.parametrize(
    ("lines", "kind"),
    [("Topic: a\nTopic: b", "many-topics"), ("Topic: Not A Slug", "bad-topic")],
)
def test_topic_lines_are_linted(tmp_path, lines, kind):
    cfg = make_project(tmp_path)
    run_apply(cfg)
    add(cfg, change(UTILS, "CONST_4 = 4", "CONST_4 = 44"), "t", f"Why: x.\n\n{lines}")
    (name,) = run_refresh(cfg).data["patches"]
    kinds = {p.kind for p in lint_header(read_patch(cfg.patches_dir / name))}
    assert kinds == {kind}
    git(cfg.tree, "status")  # the tree stays usable
