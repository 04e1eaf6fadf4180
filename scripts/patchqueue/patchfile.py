"""Read one patch file the way `git am` does (via `git mailinfo`) and lint its header."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.patchqueue.gitutil import git
from scripts.patchqueue.report import Problem

MBOX_FROM = re.compile(r"^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$", re.M)
STATUS_LINE = re.compile(r"^\s*upstream-status\s*:", re.I | re.M)
STATUS_VALUE = re.compile(
    r"^Upstream-Status: (Pending|Submitted|Accepted|Inappropriate)(?: \[(.*)\])?$"
)
# `Topic: <slug>` groups patches into one pull request (make export); one per patch at most.
TOPIC_LINE = re.compile(r"^\s*topic\s*:", re.I)
TOPIC_VALUE = re.compile(r"^Topic: ([a-z0-9][a-z0-9._-]*)$")
# `Requires-Topic: <slug>`: the topic needs another one's code (not only its lines), so its PR
# branch is stacked on the topics before it even when it applies to the bare release.
REQUIRES_LINE = re.compile(r"^\s*requires-topic\s*:\s*(\S+)\s*$", re.I)
STATUS_FORMS = "Pending | Submitted [url] | Accepted [version] | Inappropriate [reason]"
# Trailers do not count as the description that says why the patch exists.
TRAILER = re.compile(
    r"^(Upstream-Status|Signed-off-by|Co-authored-by|Reviewed-by|Acked-by|Tested-by|"
    r"Reported-by|Suggested-by|Fixes|Link|Cc|Bug|Origin|Forwarded|Applied-Upstream|"
    r"Last-Update|Change-Id|Topic|Requires-Topic)\s*:",
    re.I,
)
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


@dataclass
class Hunk:
    index: int  # 1-based within its file
    old_start: int
    new_start: int
    header: str  # the whole `@@ ... @@ context` line


@dataclass
class FileDiff:
    old_path: str | None  # None for a new file
    new_path: str | None  # None for a deleted file
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or "?"


@dataclass
class PatchInfo:
    name: str
    path: Path
    subject: str
    author: str
    date: str
    message: str  # commit message body as git am will record it (without the subject)
    diff: str  # everything after the `---` line
    mails: int
    files: list[FileDiff]

    @property
    def status(self) -> str | None:
        lines = [ln.strip() for ln in self.message.splitlines() if STATUS_LINE.match(ln)]
        return lines[0] if len(lines) == 1 else None

    @property
    def status_value(self) -> str | None:
        s = self.status
        return s.split(":", 1)[1].strip() if s else None

    @property
    def topic(self) -> str | None:
        lines = [ln.strip() for ln in self.message.splitlines() if TOPIC_LINE.match(ln)]
        m = TOPIC_VALUE.match(lines[0]) if len(lines) == 1 else None
        return m.group(1) if m else None

    @property
    def requires(self) -> list[str]:
        return [m.group(1) for ln in self.message.splitlines() if (m := REQUIRES_LINE.match(ln))]

    @property
    def purpose(self) -> str:
        """First description line: what the cover letter shows."""
        for ln in self.message.splitlines():
            if ln.strip() and not TRAILER.match(ln):
                return ln.strip()
        return ""

    def hunk_before_line(self, lineno: int) -> tuple[str | None, Hunk | None]:
        """The file and hunk that a problem git reports at line `lineno` of the patch file
        belongs to: the last hunk that starts above that line (git reports the first line that
        does not fit, which can be the next hunk's header or the signature)."""
        path, count, found = None, 0, None
        lines = self.path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        for n, line in enumerate(lines[: max(lineno - 1, 0)], 1):
            if line.startswith("diff --git "):
                m = re.match(r"^diff --git a/(\S+) b/(\S+)$", line)
                path, count = (m.group(2) if m else None), 0
            elif path and HUNK.match(line):
                count += 1
                found = (path, count, n)
        if found is None:
            return path, None
        fpath, index, _ = found
        for f in self.files:
            if f.path == fpath or fpath in (f.old_path, f.new_path):
                if index <= len(f.hunks):
                    return fpath, f.hunks[index - 1]
        return fpath, None

    def hunk_at(self, path: str, old_start: int) -> tuple[FileDiff | None, Hunk | None]:
        for f in self.files:
            if path in (f.old_path, f.new_path):
                for h in f.hunks:
                    if h.old_start == old_start:
                        return f, h
                return f, None
        return None, None


def _strip_prefix(p: str, prefix: str) -> str | None:
    p = p.split("\t", 1)[0].strip()
    if p.startswith('"') and p.endswith('"'):
        p = p[1:-1]
    if p == "/dev/null":
        return None
    return p[len(prefix) :] if p.startswith(prefix) else p


def parse_diff(text: str) -> list[FileDiff]:
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    for line in text.splitlines():
        if line.startswith("diff --git "):
            m = re.match(r"^diff --git a/(\S+) b/(\S+)$", line)
            cur = FileDiff(m.group(1), m.group(2)) if m else FileDiff(None, None)
            files.append(cur)
        elif cur is None:
            continue
        elif line.startswith("new file mode"):
            cur.old_path = None
        elif line.startswith("deleted file mode"):
            cur.new_path = None
        elif line.startswith("--- ") and not cur.hunks:
            cur.old_path = _strip_prefix(line[4:], "a/")
        elif line.startswith("+++ ") and not cur.hunks:
            cur.new_path = _strip_prefix(line[4:], "b/")
        else:
            m = HUNK.match(line)
            if m:
                cur.hunks.append(Hunk(len(cur.hunks) + 1, int(m.group(1)), int(m.group(3)), line))
    return files


def read_patch(path: Path, name: str | None = None) -> PatchInfo:
    """Split a patch file into header fields, message and diff with `git mailinfo`."""
    raw = path.read_text(encoding="utf-8", errors="surrogateescape")
    with tempfile.TemporaryDirectory() as tmp:
        msg, diff = Path(tmp) / "msg", Path(tmp) / "diff"
        info = git(None, "mailinfo", "-u", "-b", str(msg), str(diff), input=raw).stdout
        fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
        message = msg.read_text(encoding="utf-8", errors="surrogateescape")
        diff_text = diff.read_text(encoding="utf-8", errors="surrogateescape")
    return PatchInfo(
        name=name or path.name,
        path=path,
        subject=fields.get("Subject", "").strip(),
        author=f"{fields.get('Author', '')} <{fields.get('Email', '')}>",
        date=fields.get("Date", ""),
        message=message,
        diff=diff_text,
        mails=len(MBOX_FROM.findall(raw)),
        files=parse_diff(diff_text),
    )


def lint_header(p: PatchInfo) -> list[Problem]:
    """Header rules of docs/queue.md ("Writing a patch header")."""
    probs: list[Problem] = []

    def bad(kind: str, msg: str) -> None:
        probs.append(Problem(kind, msg, patch=p.name))

    if p.mails == 0:
        bad(
            "not-mbox",
            "not a `git format-patch` mail (no 'From <40 hex> Mon Sep 17 00:00:00 2001' line): "
            "commit the change in build/sglang and run `make refresh`",
        )
    elif p.mails > 1:
        bad(
            "many-mails",
            f"holds {p.mails} commits; one patch file must hold one commit",
        )
    if not p.subject:
        bad("no-subject", "no Subject: header (the first line of the commit message)")
    if not any(ln.strip() and not TRAILER.match(ln) for ln in p.message.splitlines()):
        bad(
            "no-description",
            "the commit message has no description: after the subject, add a paragraph "
            "saying why the patch exists",
        )
    statuses = [ln.strip() for ln in p.message.splitlines() if STATUS_LINE.match(ln)]
    if not statuses:
        below = STATUS_LINE.search(p.diff.split("\ndiff --git ", 1)[0])
        bad(
            "no-upstream-status",
            "the Upstream-Status: line is below the '---' line, where git am drops it; move it "
            "into the commit message"
            if below
            else f"no 'Upstream-Status:' line in the commit message (one of: {STATUS_FORMS})",
        )
    elif len(statuses) > 1:
        bad(
            "many-upstream-status",
            f"{len(statuses)} Upstream-Status: lines; keep exactly one",
        )
    else:
        err = status_error(statuses[0])
        if err:
            bad("bad-upstream-status", err)
    topics = [ln.strip() for ln in p.message.splitlines() if TOPIC_LINE.match(ln)]
    if len(topics) > 1:
        bad("many-topics", f"{len(topics)} Topic: lines; a patch belongs to one topic")
    elif topics and not TOPIC_VALUE.match(topics[0]):
        bad(
            "bad-topic",
            f"{topics[0]!r}: write `Topic: <slug>` (lower-case letters, digits, '-', '.', '_')",
        )
    if not p.files:
        bad("empty-patch", "the patch has no diff")
    return probs


def status_error(line: str) -> str | None:
    """Why an `Upstream-Status:` line is invalid, or None."""
    m = STATUS_VALUE.match(line)
    hint = f"{line!r} is not a valid Upstream-Status (use one of: {STATUS_FORMS})"
    if not m:
        return hint
    value, arg = m.group(1), m.group(2)
    if value == "Pending":
        return None if arg is None else hint
    if not arg or not arg.strip():
        return f"{line!r}: {value} needs a non-empty [...] argument ({STATUS_FORMS})"
    if value == "Submitted" and not re.match(r"^https?://\S+$", arg):
        return f"{line!r}: Submitted [url] needs the URL of the upstream PR or mail"
    return None
