"""Header and series lint (no git tree needed): the rules of docs/queue.md."""

from __future__ import annotations

import pytest

from scripts.patchqueue.patchfile import lint_header, read_patch, status_error
from scripts.patchqueue.series import DEFAULT_HEADER, lint_series

DIFF = """\
---
 a.py | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/a.py b/a.py
index 1111111..2222222 100644
--- a/a.py
+++ b/a.py
@@ -1 +1 @@
-x = 1
+x = 2
"""


def mail(subject: str, body: str, diff: str = DIFF) -> str:
    return (
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: A U Thor <a@example.invalid>\n"
        "Date: Fri, 2 Jan 2026 03:04:05 +0000\n"
        f"Subject: [PATCH] {subject}\n\n{body}{diff}"
    )


def kinds(tmp_path, text: str) -> set[str]:
    path = tmp_path / "0001-x.patch"
    path.write_text(text)
    return {p.kind for p in lint_header(read_patch(path))}


GOOD_BODY = "Why: x must be 2 for the FP8 path.\n\nUpstream-Status: Pending\n"


def test_good_header_passes(tmp_path):
    assert kinds(tmp_path, mail("a: x is 2", GOOD_BODY)) == set()


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("Why: x must be 2.\n", "no-upstream-status"),
        ("Why: x.\n\nUpstream-Status: Maybe\n", "bad-upstream-status"),
        ("Why: x.\n\nUpstream-Status: Pending\nUpstream-Status: Pending\n", "many-upstream-status"),
        ("Upstream-Status: Pending\n", "no-description"),
        ("Why: x.\n\nUpstream-Status: Submitted [not a url]\n", "bad-upstream-status"),
        ("Why: x.\n\nUpstream-Status: Inappropriate\n", "bad-upstream-status"),
        ("Why: x.\n\nupstream-status: pending\n", "bad-upstream-status"),
    ],
)
def test_header_defects(tmp_path, body, kind):
    assert kind in kinds(tmp_path, mail("a: x is 2", body))


def test_status_below_the_cut_line_is_explained(tmp_path):
    text = mail("a: x", "Why: x.\n", DIFF.replace("---\n", "---\nUpstream-Status: Pending\n", 1))
    path = tmp_path / "p.patch"
    path.write_text(text)
    (problem,) = lint_header(read_patch(path))
    assert problem.kind == "no-upstream-status" and "below the '---'" in problem.message


def test_plain_diff_and_two_commits_are_rejected(tmp_path):
    assert "not-mbox" in kinds(tmp_path, DIFF)
    assert "many-mails" in kinds(tmp_path, mail("a", GOOD_BODY) + "\n" + mail("b", GOOD_BODY))
    assert "empty-patch" in kinds(tmp_path, mail("a", GOOD_BODY, "---\n"))


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("Upstream-Status: Pending", True),
        ("Upstream-Status: Submitted [https://github.com/sgl-project/sglang/pull/1]", True),
        ("Upstream-Status: Accepted [v0.5.11]", True),
        ("Upstream-Status: Inappropriate [ROCm image pin only]", True),
        ("Upstream-Status: Pending [soon]", False),
        ("Upstream-Status: Accepted []", False),
        ("Upstream-Status: Backport", False),
    ],
)
def test_status_values(line, ok):
    assert (status_error(line) is None) is ok


def test_series_comments_and_syntax(tmp_path):
    (tmp_path / "a.patch").write_text("x")
    (tmp_path / "series").write_text(DEFAULT_HEADER + "a.patch  # trailing comment\n\n")
    entries, problems = lint_series(tmp_path)
    assert [e.name for e in entries] == ["a.patch"] and problems == []
    (tmp_path / "series").write_text("a.patch -p0\n../escape.patch\n")
    _, problems = lint_series(tmp_path)
    assert [p.kind for p in problems] == ["series-syntax", "series-syntax"]


def test_missing_series_file(tmp_path):
    _, problems = lint_series(tmp_path)
    assert [p.kind for p in problems] == ["series-missing"]
