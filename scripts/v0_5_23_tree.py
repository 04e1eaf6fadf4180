"""Interim: build build/sglang-v0.5.23 (base + patches-v0.5.23/series) until `make apply
SERIES=v0.5.23` (the multi-series queue tooling) is merged; then delete this file.

    python3 -m scripts.v0_5_23_tree [--wheel-file PATH]

The base commit is made by scripts/patchqueue/source.py itself (its wheel -> commit recipe),
with the 0.5.23 pins below in place of versions.env's v0.5.9 ones, so its id is the one the
tooling gives: a21fdc9f5191b56fcaa382d454256f5721311f21. The series is applied with
`git am --no-3way` onto branch nsa-fp8. An existing tree is left alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from scripts.lockfile import read_lock
from scripts.patchqueue import source
from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import git

ROOT = Path(__file__).resolve().parents[1]
PINS = {
    "SGLANG_VERSION": "0.5.23",
    "SGLANG_TAG": "v0.5.23",
    "SGLANG_WHEEL": "sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl",
    "SGLANG_WHEEL_SHA256": "00b3cd5b265ac76c64185fbb6b95424f324ddd9f428d0306b77bc9db9d859937",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel-file", type=Path, help="a local copy of the pinned wheel")
    args = ap.parse_args(argv)
    cfg = QueueConfig.for_root(
        ROOT,
        tree=ROOT / "build" / "sglang-v0.5.23",
        patches_dir=ROOT / "patches-v0.5.23",
        lock={**read_lock(ROOT / "versions.env"), **PINS},
    )
    if (cfg.tree / ".git").exists():
        print(f"{cfg.tree} exists: left alone (delete it to rebuild)")
        return 0
    source.run_source(cfg, wheel_file=args.wheel_file)
    git(cfg.tree, "checkout", "-q", "-B", cfg.branch, cfg.base_ref)
    names = [
        line.strip()
        for line in cfg.series.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    patches = [str(cfg.patches_dir / n) for n in names]
    ident = ["-c", "user.name=sglang-nsa-fp8", "-c", "user.email=nsa-fp8@users.noreply.github.com"]
    proc = subprocess.run(["git", "-C", str(cfg.tree), *ident, "am", "-q", "--no-3way", *patches])
    if proc.returncode != 0:
        print("git am failed: see the tree's `git am --show-current-patch`", file=sys.stderr)
        return 1
    print(f"{cfg.tree}: {cfg.base_ref} + {len(patches)} patches on {cfg.branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
