"""`make export`: the series as pull requests for upstream, one per topic.

A topic is a group of patches that upstream should review together. A patch names its topic with
a `Topic: <slug>` trailer in its commit message; a patch without one is a topic of its own, named
by its file slug. Only patches meant for upstream (Upstream-Status Pending or Submitted) are
exported; Accepted ones are already there and Inappropriate ones are ours only.

For each topic: a branch `pr/<topic>` in the series' tree with the topic's patches, their
`Upstream-Status:` and `Topic:` lines removed, and `build/export/<tag>/<topic>.mbox`: a cover
letter (what, why, evidence, how to test, what it applies to) and the patches `[PATCH n/N]`. A
topic that does not apply to the bare release is stacked on the topics before it, and its cover
letter says which ones it depends on. A patch whose topic needs another topic's code without
touching its lines says so with `Requires-Topic: <slug>`: its topic is then always stacked.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.patchqueue.apply import AM_ARGS, QueueError, load_queue, require_base
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import git, out
from scripts.patchqueue.patchfile import (
    REQUIRES_LINE,
    STATUS_LINE,
    TOPIC_LINE,
    TRAILER,
    PatchInfo,
)
from scripts.patchqueue.refresh import FORMAT_PATCH
from scripts.patchqueue.report import Problem, Report, say

EXPORTED = ("Pending", "Submitted")
# Labelled paragraphs of a commit message that feed the cover letter's sections.
SECTIONS = {
    "why": re.compile(r"^why\s*:", re.I),
    "evidence": re.compile(r"^(evidence|tested|measured|results?)\s*:", re.I),
    "test": re.compile(r"^(test|tests|how to test|testing)\s*:", re.I),
}


@dataclass
class Topic:
    name: str
    patches: list[tuple[str, PatchInfo]] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)


def topic_of(name: str, info: PatchInfo) -> str:
    """The patch's `Topic:` value, else its file slug (lower-case, without the number)."""
    if info.topic:
        return info.topic
    slug = re.sub(r"^\d+-", "", name.removesuffix(".patch"))
    return slug.lower()


def group(queue: list[tuple[str, PatchInfo]]) -> list[Topic]:
    """Topics in the order of their first patch in the series."""
    topics: dict[str, Topic] = {}
    for name, info in queue:
        key = topic_of(name, info)
        topics.setdefault(key, Topic(key)).patches.append((name, info))
    return list(topics.values())


def paragraphs(message: str) -> list[str]:
    paras, cur = [], []
    for line in message.splitlines():
        if line.strip():
            cur.append(line.rstrip())
        elif cur:
            paras.append("\n".join(cur))
            cur = []
    if cur:
        paras.append("\n".join(cur))
    return paras


def sections(info: PatchInfo) -> dict[str, list[str]]:
    """The message's paragraphs by cover-letter section; unlabelled prose is `what`."""
    found: dict[str, list[str]] = {"what": [], "why": [], "evidence": [], "test": []}
    for para in paragraphs(info.message):
        first = para.splitlines()[0]
        if all(TRAILER.match(ln) or _ours(ln) for ln in para.splitlines()):
            continue
        kind = next((k for k, rx in SECTIONS.items() if rx.match(first)), "what")
        found[kind].append(para)
    return found


def _ours(line: str) -> bool:
    """Trailers for this queue only, not for upstream."""
    return bool(STATUS_LINE.match(line) or TOPIC_LINE.match(line) or REQUIRES_LINE.match(line))


def _apply_topic(work: Path, topic: Topic, start: str) -> tuple[bool, str]:
    """Apply the topic's patches at `start` in `work`; (ok, error text)."""
    git(work, "checkout", "-q", "--detach", start)
    for name, info in topic.patches:
        am = git(work, *AM_ARGS, str(info.path), check=False)
        if am.returncode != 0:
            git(work, "am", "--abort", check=False)
            return False, f"{name}: " + (am.stderr.strip().splitlines() or ["git am failed"])[-1]
        msg = out(work, "log", "-1", "--format=%B")
        keep = [ln for ln in msg.splitlines() if not _ours(ln)]
        date = out(work, "log", "-1", "--format=%aD")
        git(
            work,
            "commit",
            "-q",
            "--amend",
            "-m",
            "\n".join(keep).strip() + "\n",
            env={"GIT_COMMITTER_DATE": date},
        )
    return True, ""


def run_export(cfg: QueueConfig, title: str | None = None) -> Report:
    base = require_base(cfg)
    queue = [(e.name, i) for e, i in load_queue(cfg)]
    sent = [(n, i) for n, i in queue if (i.status_value or "").split(" ")[0] in EXPORTED]
    kept = [(n, i) for n, i in queue if (n, i) not in sent]
    topics = group(sent)
    outdir = cfg.export_dir / cfg.tag
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*.mbox"):
        old.unlink()  # a topic that no longer exists must not linger
    report = Report("export", data={"base": cfg.base_ref, "dir": str(outdir), "topics": []})
    with tempfile.TemporaryDirectory(prefix="queue-export-") as tmp:
        work = Path(tmp) / "work"
        git(cfg.tree, "worktree", "add", "--detach", "-f", str(work), base)
        try:
            stack = base  # every exported topic so far, in series order
            done: list[Topic] = []
            for topic in topics:
                start = base
                needs = sorted({r for _, i in topic.patches for r in i.requires})
                unknown = [r for r in needs if r not in {t.name for t in done}]
                if unknown:
                    raise QueueError(
                        f"topic {topic.name} has Requires-Topic: {', '.join(unknown)}, which is "
                        "not an exported topic before it in the series"
                    )
                ok, err = (False, "") if needs else _apply_topic(work, topic, base)
                if not ok and done:
                    start, topic.depends_on = stack, [t.name for t in done]
                    ok, err = _apply_topic(work, topic, stack)
                if not ok:
                    raise QueueError(
                        f"topic {topic.name} does not apply to {cfg.base_ref} nor on the topics "
                        f"before it ({err}); the patches kept out of the export "
                        f"({', '.join(n for n, _ in kept) or 'none'}) may be what it needs"
                    )
                git(work, "branch", "-f", f"pr/{topic.name}", "HEAD")
                patches = out(
                    work,
                    *[a for a in FORMAT_PATCH if a != "--no-numbered"],
                    "--numbered",
                    "--stdout",
                    f"{start}..HEAD",
                )
                if start != stack:  # grow the stack by this topic too
                    ok, err = _apply_topic(work, topic, stack)
                    if not ok:
                        raise QueueError(
                            f"topic {topic.name} applies to {cfg.base_ref} but conflicts with "
                            f"the topics before it ({err}): merge the topics or reorder them"
                        )
                stack = out(work, "rev-parse", "HEAD")
                cover = cover_letter(cfg, topic, title)
                mbox = outdir / f"{topic.name}.mbox"
                mbox.write_text(cover + patches + "\n", encoding="utf-8")
                _warn_missing(topic, report)
                report.data["topics"].append(
                    {
                        "topic": topic.name,
                        "branch": f"pr/{topic.name}",
                        "mbox": str(mbox),
                        "patches": [n for n, _ in topic.patches],
                        "depends_on": topic.depends_on,
                    }
                )
                done.append(topic)
                dep = f" (on top of {', '.join(topic.depends_on)})" if topic.depends_on else ""
                say(
                    "export",
                    f"pr/{topic.name}: {len(topic.patches)} patch(es){dep} -> {cfg.shown(mbox)}",
                )
        finally:
            git(cfg.tree, "worktree", "remove", "--force", str(work), check=False)
    for name, info in kept:
        say("export", f"not exported: {name} ({info.status_value})")
    report.data.update(exported=[n for n, _ in sent], kept=[n for n, _ in kept])
    for p in report.problems:
        say("export", str(p))
    return report


def _warn_missing(topic: Topic, report: Report) -> None:
    labels = {"why": "Why:", "evidence": "Evidence:", "test": "Test:"}
    missing = [
        label
        for kind, label in labels.items()
        if not any(sections(i)[kind] for _, i in topic.patches)
    ]
    if missing:
        report.add(
            Problem(
                "cover-letter",
                f"topic {topic.name}: no {', '.join(missing)} paragraph in its commit "
                "messages; its cover letter says so (add them to a commit message)",
                patch=topic.patches[0][0],
                severity="warning",
            )
        )


def _section(title: str, items: list[tuple[int, str]], n: int, missing: str) -> list[str]:
    lines = [title, "-" * len(title)]
    if not items:
        return lines + [missing, ""]
    for k, para in items:
        prefix = f"[{k}/{n}] " if n > 1 else ""
        lines += [prefix + para.splitlines()[0], *para.splitlines()[1:], ""]
    return lines


def cover_letter(cfg: QueueConfig, topic: Topic, title: str | None = None) -> str:
    n = len(topic.patches)
    first = topic.patches[0][1]
    subject = title or (first.subject if n == 1 else f"{topic.name}: {first.subject}")
    lines = [
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
        "From: sglang-nsa-fp8 <queue@sglang-nsa-fp8.invalid>",
        "Date: Thu, 1 Jan 1970 00:00:00 +0000",
        f"Subject: [PATCH 0/{n}] {subject}",
        "",
        "What",
        "----",
    ]
    for k, (_, info) in enumerate(topic.patches, 1):
        lines.append(f"[{k}/{n}] {info.subject}")
        for para in sections(info)["what"]:
            lines += [f"      {ln}" for ln in para.splitlines()]
    lines.append("")
    parts = {
        kind: [(k, p) for k, (_, i) in enumerate(topic.patches, 1) for p in sections(i)[kind]]
        for kind in ("why", "evidence", "test")
    }
    lines += _section("Why", parts["why"], n, "(not stated in the patches)")
    lines += _section("Evidence", parts["evidence"], n, "(none given in the patches)")
    lines += _section("How to test", parts["test"], n, "(not stated in the patches)")
    lines += [
        "Base",
        "----",
        f"Made against the sglang {cfg.tag} release ({cfg.base_ref}); for a pull request "
        f"against main: `git rebase --onto origin/main {cfg.base_ref} pr/{topic.name}`.",
    ]
    if topic.depends_on:
        lines.append(
            f"Depends on the topics before it (open those first): {', '.join(topic.depends_on)}."
        )
    statuses = sorted({i.status_value or "" for _, i in topic.patches})
    lines += [f"Upstream-Status of the patches: {'; '.join(statuses)}.", "", ""]
    return "\n".join(lines)
