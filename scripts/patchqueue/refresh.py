"""`make refresh`: write the commits base..nsa-fp8 back into patches/, deterministically.

The same commits always give the same bytes: no commit ids (--zero-commit), no git version
signature, `[PATCH]` subjects without n/m numbering (adding a patch does not rewrite the others),
full blob ids in `index` lines (an abbreviation could grow when the object store grows), a fixed
diff algorithm and context, and no user or system git configuration (see gitutil.git_env).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from scripts.patchqueue.apply import (
    QueueError,
    branch_commits,
    commit_key,
    patch_key,
    require_base,
)
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import am_in_progress, dirty_files, out, rev
from scripts.patchqueue.patchfile import read_patch
from scripts.patchqueue.report import Report, say
from scripts.patchqueue.series import parse_series, write_series
from scripts.patchqueue.state import file_sha, load_state, save_state

FORMAT_PATCH = [
    "format-patch",
    "--zero-commit",
    "--no-signature",
    "--no-numbered",
    "--subject-prefix=PATCH",
    "--full-index",
    "--no-renames",
    "--diff-algorithm=myers",
    "--unified=3",
    "--inter-hunk-context=0",
    "--no-color",
    "--no-notes",
    "--no-thread",
    "--no-attach",
    "--encode-email-headers",
    # The whole subject slug; whole_word_name() shortens it (git would cut mid-word).
    "--filename-max-length=255",
]
# Longest slug in a file name (NNNN-<slug>.patch), as git's default 64-character names allow.
SLUG_MAX = 52


def whole_word_slug(slug: str, limit: int = SLUG_MAX) -> str:
    """`slug` cut to at most `limit` characters at a word boundary ('-' between words)."""
    if len(slug) <= limit:
        return slug
    cut = slug[: limit + 1].rsplit("-", 1)[0] if "-" in slug[: limit + 1] else ""
    return (cut or slug[:limit]).rstrip("-.")


def whole_word_name(name: str) -> str:
    """`0001-some-long-subject.patch` with its slug cut at a word boundary."""
    number, _, rest = name.partition("-")
    return f"{number}-{whole_word_slug(rest.removesuffix('.patch'))}.patch"


def format_patches(cfg: QueueConfig, base: str, tip: str, dest: Path) -> list[Path]:
    """`git format-patch` base..tip into dest as 0001-slug.patch, ...; returns the files."""
    listing = out(cfg.tree, *FORMAT_PATCH, "--start-number=1", "-o", str(dest), f"{base}..{tip}")
    files = []
    for line in listing.splitlines():
        if line.strip():
            made = Path(line)
            files.append(made.rename(made.with_name(whole_word_name(made.name))))
    return files


def _unsaved(
    cfg: QueueConfig, commits: list[str], old: list[str], new_files: dict[str, bytes]
) -> tuple[list[str], list[str], bool]:
    """Patch files that refresh would delete or overwrite although the branch lacks their content.

    Returns (missing, edited): `missing` when the branch holds fewer commits than the series
    lists, the listed files that match no commit; `edited`, files that match no commit and are not
    what apply/refresh last read or wrote (a hand edit). A file whose commit was changed in the
    tree still has its recorded bytes: the commit wins, as it should.
    """
    keys = {commit_key(cfg, c) for c in commits}
    state = load_state(cfg.tree, cfg.branch, cfg.patches_dir)
    unheld = []
    for name in old:
        path = cfg.patches_dir / name
        if not path.is_file() or new_files.get(name) == path.read_bytes():
            continue
        if patch_key(cfg, read_patch(path, name)) not in keys:
            unheld.append(name)
    missing = (unheld or old[len(commits) :]) if len(commits) < len(old) else []
    recorded = state.files if state else {}
    edited = [n for n in unheld if recorded.get(n) != file_sha(cfg.patches_dir / n)]
    return missing, [n for n in edited if n not in missing], state is not None


def run_refresh(cfg: QueueConfig, allow_drop: bool = False) -> Report:
    report = Report("refresh", data={"tree": str(cfg.tree), "branch": cfg.branch})
    base = require_base(cfg)
    busy = am_in_progress(cfg.tree)
    if busy:
        raise QueueError(
            f"a {busy} is in progress in {cfg.tree}: finish it (`{busy} --continue`) or drop it "
            f"(`{busy} --abort`) before `make refresh`"
        )
    dirty = dirty_files(cfg.tree)
    if dirty:
        raise QueueError(
            f"{cfg.tree} has uncommitted changes that refresh would not save:\n  "
            + "\n  ".join(dirty[:20])
            + "\nCommit them (a new commit, or `git commit --amend` / `git rebase -i` into the "
            "patch they belong to), then re-run `make refresh`."
        )
    commits = branch_commits(cfg, base)
    if commits is None or not out(cfg.tree, "rev-parse", "--verify", "-q", cfg.branch):
        raise QueueError(
            f"{cfg.branch} is missing or not based on {cfg.base_ref}: run `make apply`"
        )
    merges = out(cfg.tree, "rev-list", "--merges", f"{base}..{cfg.branch}")
    if merges:
        raise QueueError(
            f"{cfg.branch} has merge commits ({merges.split()[0][:12]}): a queue is linear"
        )

    old_entries, _ = parse_series(cfg.series) if cfg.series.is_file() else ([], [])
    old = [e.name for e in old_entries]
    cfg.patches_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        made = format_patches(cfg, base, cfg.branch, Path(tmp))
        exported = {p.name: p.read_bytes() for p in made}
    missing, edited, recorded = _unsaved(cfg, commits, old, exported)
    if (missing or edited) and not allow_drop:
        raise QueueError(_refusal(cfg, commits, old, missing, edited, recorded))
    for name in missing + edited:
        say("refresh", f"ALLOW_DROP=1: dropping the content of {cfg.shown(cfg.patches_dir / name)}")

    changed, same = [], []
    for name, data in exported.items():
        target = cfg.patches_dir / name
        if target.is_file() and target.read_bytes() == data:
            same.append(name)
        else:
            target.write_bytes(data)
            changed.append(name)
    names = list(exported)
    removed = sorted(set(old) - set(names))
    for name in removed:
        (cfg.patches_dir / name).unlink(missing_ok=True)
    write_series(cfg.series, names)
    save_state(cfg.tree, cfg.branch, cfg.patches_dir, names, rev(cfg.tree, cfg.branch))
    for name in changed:
        say("refresh", f"wrote   {name}")
    for name in removed:
        say("refresh", f"removed {name} (no longer on {cfg.branch})")
    say(
        "refresh",
        f"{len(names)} patch(es): {len(same)} unchanged, {len(changed)} written, "
        f"{len(removed)} removed",
    )
    report.data.update(patches=names, written=changed, removed=removed, commits=len(commits))
    return report


def _refusal(
    cfg: QueueConfig,
    commits: list[str],
    old: list[str],
    missing: list[str],
    edited: list[str],
    recorded: bool,
) -> str:
    lines = []
    if missing:
        lines += [
            f"{cfg.branch} holds {len(commits)} commit(s) but {cfg.shown(cfg.series)} lists "
            f"{len(old)}: refresh would delete or overwrite these patch files, whose changes are "
            f"on no commit of {cfg.branch}:",
            *(f"  {cfg.shown(cfg.patches_dir / n)}" for n in missing),
            f"To keep them: `make apply` rebuilds {cfg.branch} from the patch files (after a "
            "`git am --abort` the branch lost them; FORCE=1 if apply asks, it saves the branch).",
        ]
    if edited:
        lines += [
            "These patch files were edited by hand since the last `make apply`/`make refresh` "
            f"and differ from every commit of {cfg.branch}; refresh would overwrite the edits:",
            *(f"  {cfg.shown(cfg.patches_dir / n)}" for n in edited),
            *(
                []
                if recorded
                else [
                    f"({cfg.tree} has no record of the last apply/refresh, so a commit changed in "
                    "the tree looks the same as a hand edit; `make apply` records it.)"
                ]
            ),
            "To keep an edit: `make apply FORCE=1` (rebuilds the branch from the files, saving "
            "the current branch as a backup), or make the same change in the tree and commit it.",
        ]
    lines.append(
        "To drop them on purpose (a patch removed, squashed, or an edit discarded): "
        "`make refresh ALLOW_DROP=1`."
    )
    return "\n".join(lines)
