"""scripts/image: the queue hash, the pre-build checks of `make image`, the CI summary."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts.image import ci_summary, preflight
from scripts.image.queue_hash import QueueHashError, queue_hash

GIT_ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="t",
    GIT_AUTHOR_EMAIL="t@t",
    GIT_COMMITTER_NAME="t",
    GIT_COMMITTER_EMAIL="t@t",
)


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env=GIT_ENV,
    ).stdout


# --- queue hash ------------------------------------------------------------------------------


def make_queue(root: Path, patches: dict[str, str], order: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in patches.items():
        (root / name).write_text(text)
    (root / "series").write_text("# q\n" + "".join(f"{n}\n" for n in order or list(patches)))
    return root


def test_queue_hash_is_stable_and_content_sensitive(tmp_path: Path):
    a = make_queue(tmp_path / "a", {"1.patch": "one", "2.patch": "two"})
    b = make_queue(tmp_path / "b", {"1.patch": "one", "2.patch": "two"})
    assert queue_hash(a) == queue_hash(b)
    assert len(queue_hash(a)) == 12
    c = make_queue(tmp_path / "c", {"1.patch": "one", "2.patch": "two!"})
    d = make_queue(tmp_path / "d", {"1.patch": "one", "2.patch": "two"}, ["2.patch", "1.patch"])
    # Moving bytes between two patches must change the hash too.
    e = make_queue(tmp_path / "e", {"1.patch": "onet", "2.patch": "wo"})
    assert len({queue_hash(p) for p in (a, c, d, e)}) == 4


def test_queue_hash_missing_patch(tmp_path: Path):
    q = make_queue(tmp_path, {"1.patch": "one"}, ["1.patch", "2.patch"])
    with pytest.raises(QueueHashError, match="lists 2.patch"):
        queue_hash(q)


# --- preflight --------------------------------------------------------------------------------

DIFF = """\
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: t <t@t>
Date: Mon, 1 Jan 2024 00:00:00 +0000
Subject: [PATCH] {subject}

---
diff --git a/python/sglang/{name} b/python/sglang/{name}
new file mode 100644
--- /dev/null
+++ b/python/sglang/{name}
@@ -0,0 +1 @@
+{body}
"""


@pytest.fixture
def applied(tmp_path: Path) -> tuple[Path, Path]:
    """A tree at base tag upstream/v0 plus the queue's two patches, and the patches dir."""
    tree = tmp_path / "sglang"
    (tree / "python" / "sglang").mkdir(parents=True)
    (tree / "python" / "sglang" / "__init__.py").write_text("")
    git(tree, "init", "-q")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "base")
    git(tree, "tag", "upstream/v0")
    patches = tmp_path / "patches"
    texts = {
        "0001-a.patch": DIFF.format(subject="a", name="a.py", body="A = 1"),
        "0002-b.patch": DIFF.format(subject="b", name="b.py", body="B = 2"),
    }
    make_queue(patches, texts)
    for name in texts:
        git(tree, "am", "-q", str(patches / name))
    return tree, patches


def test_tree_with_the_queue_passes(applied: tuple[Path, Path]):
    tree, patches = applied
    assert preflight.check_tree(tree, patches, "upstream/v0") == 2


def test_edited_patch_is_detected(applied: tuple[Path, Path]):
    tree, patches = applied
    (patches / "0002-b.patch").write_text(DIFF.format(subject="b", name="b.py", body="B = 3"))
    with pytest.raises(preflight.PreflightError, match="differs from patches/0002-b.patch"):
        preflight.check_tree(tree, patches, "upstream/v0")


def test_new_patch_not_applied_is_detected(applied: tuple[Path, Path]):
    tree, patches = applied
    (patches / "0003-c.patch").write_text(DIFF.format(subject="c", name="c.py", body="C = 1"))
    with (patches / "series").open("a") as f:
        f.write("0003-c.patch\n")
    with pytest.raises(preflight.PreflightError, match="2 commit.*lists 3"):
        preflight.check_tree(tree, patches, "upstream/v0")


def test_dirty_tree_is_detected(applied: tuple[Path, Path]):
    tree, patches = applied
    (tree / "python" / "sglang" / "a.py").write_text("A = 'edited'\n")
    with pytest.raises(preflight.PreflightError, match="uncommitted changes"):
        preflight.check_tree(tree, patches, "upstream/v0")


def test_missing_tree_says_run_make_apply(tmp_path: Path):
    with pytest.raises(preflight.PreflightError, match="run `make apply`"):
        preflight.check_tree(tmp_path / "nope", tmp_path, "upstream/v0")


def test_preflight_refuses_unpinned_base(applied: tuple[Path, Path], capsys):
    tree, patches = applied
    common = ["--gpu-arch", "gfx950", "--tree", str(tree), "--patches", str(patches)]
    common += ["--base-ref", "upstream/v0"]
    assert preflight.main([*common, "--base-image", "repo/img:tag"]) == 1
    err = capsys.readouterr().err
    assert "ROCM_BASE_DIGEST_GFX950" in err and "ALLOW_UNPINNED_BASE=1" in err
    assert preflight.main([*common, "--base-image", "repo/img:tag", "--allow-unpinned-base"]) == 0
    assert preflight.main([*common, "--base-image", "repo/img:tag@sha256:" + "0f" * 32]) == 0
    # A digest of the wrong length is not a pin.
    assert preflight.main([*common, "--base-image", "repo/img:tag@sha256:abc"]) == 1


# --- CI summary -------------------------------------------------------------------------------


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


def test_summary_rejects_a_malformed_line(tmp_path: Path):
    ci_dir = tmp_path / "ci" / "gfx950"
    ci_dir.mkdir(parents=True)
    (ci_dir / "steps.tsv").write_text("image passed\n")
    with pytest.raises(ci_summary.SummaryError, match="steps.tsv:1"):
        ci_summary.summary(tmp_path, ["gfx950"])
