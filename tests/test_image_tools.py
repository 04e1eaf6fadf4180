"""scripts/image: the queue hash (on the queue's own series parser) and the pre-build checks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts.image import preflight
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


def test_preflight_accepts_an_unpinned_base_with_a_note(applied: tuple[Path, Path], capsys):
    """Without a digest the build resolves the tag itself (scripts.image.base): no refusal."""
    tree, patches = applied
    common = ["--gpu-arch", "gfx950", "--tree", str(tree), "--patches", str(patches)]
    common += ["--base-ref", "upstream/v0"]
    assert preflight.main([*common, "--base-image", "repo/img:tag"]) == 0
    err = capsys.readouterr().err
    assert "ROCM_BASE_DIGEST_GFX950" in err and "resolves the tag once" in err
    assert preflight.main([*common, "--base-image", "repo/img:tag@sha256:" + "0f" * 32]) == 0
    assert "resolves" not in capsys.readouterr().err


def test_queue_hash_uses_the_queue_parser(tmp_path: Path):
    """A series line `make apply` rejects (options, a path outside patches/) stops the hash too."""
    q = make_queue(tmp_path / "q", {"1.patch": "one"})
    (q / "series").write_text("1.patch -p0\n")
    with pytest.raises(QueueHashError, match="only a file name is allowed"):
        queue_hash(q)
    (q / "series").write_text("../1.patch\n")
    with pytest.raises(QueueHashError, match="must be a path inside q/"):
        queue_hash(q)


def test_image_helpers_have_no_series_parser_of_their_own():
    root = Path(__file__).resolve().parent.parent / "scripts" / "image"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert 'split("#", 1)' not in text, f"{path.name} parses patches/series itself"
