"""Checks `make image` runs before it stages a build context and calls docker.

    python3 -m scripts.image.preflight --gpu-arch gfx942 --base-image IMAGE [--docker docker] \
        [--tree build/sglang --patches patches --base-ref upstream/v0.5.9] \
        [--allow-stale-tree] [--print-only]

It refuses an unknown arch, an unreachable Docker daemon (before anything is staged), and a
patched tree that is missing, dirty, or not the current patch queue (compared patch by patch
with `git patch-id`), because the image tag claims the queue hash. A base image without digest
is fine: scripts/image/base.py resolves and records it at build time.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from scripts.image.docker import DockerError, check_daemon
from scripts.image.queue_hash import QueueHashError, series_entries

GPU_ARCHES = {"gfx942": "MI300X/MI325X", "gfx950": "MI350X/MI355X"}
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


class PreflightError(Exception):
    """`make image` must not build; the message says what to do."""


def check_arch(arch: str) -> None:
    if arch not in GPU_ARCHES:
        known = ", ".join(f"{a} ({cards})" for a, cards in GPU_ARCHES.items())
        raise PreflightError(f"GPU_ARCH={arch!r} is not supported; use one of: {known}")


def base_is_pinned(base_image: str) -> bool:
    return bool(_DIGEST.search(base_image))


def unpinned_note(base_image: str, arch: str) -> str:
    key = f"ROCM_BASE_DIGEST_{arch.upper()}"
    return (
        f"base image {base_image!r} has no digest ({key} in versions.env is empty): "
        "`make image` resolves the tag once, builds from that digest, records it and prints "
        "the line to commit."
    )


def _git(tree: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(tree), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PreflightError(f"git {' '.join(args)} in {tree} failed: {proc.stderr.strip()}")
    return proc.stdout


def _patch_id(tree: Path, diff: str) -> str:
    out = _git(tree, "patch-id", "--stable", stdin=diff).split()
    return out[0] if out else ""  # empty diff: no id


def check_tree(tree: Path, patches_dir: Path, base_ref: str) -> int:
    """Raise unless `tree` is a clean checkout of base_ref plus exactly the queue's patches."""
    if not (tree / "python" / "sglang" / "__init__.py").is_file():
        raise PreflightError(f"{tree}/python/sglang is missing: run `make apply` first")
    dirty = _git(tree, "status", "--porcelain", "--untracked-files=no").strip()
    if dirty:
        raise PreflightError(
            f"{tree} has uncommitted changes; the image would not be the queue it is tagged "
            f"with. Run `make refresh` (keep them) or `make apply` (drop them), or pass "
            f"ALLOW_STALE_TREE=1.\n{dirty}"
        )
    commits = _git(tree, "rev-list", "--reverse", f"{base_ref}..HEAD").split()
    try:
        names = series_entries(patches_dir / "series")
    except (OSError, QueueHashError) as exc:
        raise PreflightError(f"cannot read {patches_dir}/series: {exc}") from exc
    if len(commits) != len(names):
        raise PreflightError(
            f"{tree} has {len(commits)} commit(s) on {base_ref}, patches/series lists "
            f"{len(names)}: run `make apply` (or ALLOW_STALE_TREE=1)"
        )
    for commit, name in zip(commits, names):
        applied = _patch_id(tree, _git(tree, "show", "--format=", commit))
        queued = _patch_id(tree, (patches_dir / name).read_text(encoding="utf-8"))
        if applied != queued:
            raise PreflightError(
                f"{tree}: commit {commit[:12]} differs from patches/{name}: run `make apply` "
                "(or ALLOW_STALE_TREE=1)"
            )
    return len(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pre-build checks of `make image`")
    parser.add_argument("--gpu-arch", required=True)
    parser.add_argument("--base-image", required=True)
    parser.add_argument("--tree", type=Path, default=Path("build/sglang"))
    parser.add_argument("--patches", type=Path, default=Path("patches"))
    parser.add_argument("--base-ref", default="")
    parser.add_argument("--allow-stale-tree", action="store_true")
    parser.add_argument("--docker", help="check that this docker command reaches a daemon")
    parser.add_argument("--print-only", action="store_true")
    args = parser.parse_args(argv)
    try:
        check_arch(args.gpu_arch)
        if not base_is_pinned(args.base_image):
            print(f"image: note: {unpinned_note(args.base_image, args.gpu_arch)}", file=sys.stderr)
        if args.print_only:
            return 0
        if args.docker:
            try:
                version = check_daemon(args.docker)
            except DockerError as exc:
                raise PreflightError(str(exc)) from exc
            print(f"image: Docker daemon {version} reachable")
        if args.allow_stale_tree:
            if not (args.tree / "python" / "sglang" / "__init__.py").is_file():
                raise PreflightError(f"{args.tree}/python/sglang is missing: run `make apply`")
            print(f"image: warning: not checking that {args.tree} is the current queue")
        else:
            if not args.base_ref:
                raise PreflightError("--base-ref is required to check the tree")
            count = check_tree(args.tree, args.patches, args.base_ref)
            print(f"image: {args.tree} holds the current queue ({count} patch(es))")
    except PreflightError as exc:
        print(f"image: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
