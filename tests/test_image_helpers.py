"""Shared bits of the tests/test_image_*.py files (no tests here): paths and the lock."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.lockfile import read_lock

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "rocm.Dockerfile"
WORKFLOWS = sorted((ROOT / "ci" / "workflows").glob("*.yml"))
# ARGs of the Dockerfile that are not lock keys: computed by mk/image.mk per build.
DERIVED_ARGS = {"BASE_IMAGE", "GPU_ARCH", "QUEUE_HASH"}


def lock() -> dict[str, str]:
    return read_lock(ROOT / "versions.env")


def dockerfile_args() -> dict[str, str | None]:
    """ARG name -> default (None when the ARG has none)."""
    args: dict[str, str | None] = {}
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", line.strip())
        if match:
            args[match.group(1)] = match.group(2)
    return args
