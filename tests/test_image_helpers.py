"""Shared bits of the tests/test_image_*.py files (no tests here): paths and versions.env."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from scripts.pins import read_pins

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "rocm.Dockerfile"
# GitHub reads workflows from .github/workflows only.
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# ARGs of the Dockerfile that are not versions.env keys: computed by mk/image.mk per build.
DERIVED_ARGS = {"BASE_IMAGE", "BASE_DIGEST", "GPU_ARCH", "QUEUE_HASH"}
FAKE_DOCKER = ROOT / "tests" / "image_fixtures" / "fake_docker.py"


def lock() -> dict[str, str]:
    return read_pins(ROOT / "versions.env")


def dockerfile_args() -> dict[str, str | None]:
    """ARG name -> default (None when the ARG has none)."""
    args: dict[str, str | None] = {}
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", line.strip())
        if match:
            args[match.group(1)] = match.group(2)
    return args


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, rest of line) for each Dockerfile instruction, continuations joined."""
    out: list[tuple[str, str]] = []
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


class FakeDocker:
    """tests/image_fixtures/fake_docker.py behind a `docker` on PATH, with its state folder."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "fake-docker"
        self.dir.mkdir()
        self.bin = tmp / "fake-bin"
        self.bin.mkdir()
        (self.bin / "docker").symlink_to(FAKE_DOCKER)
        self.env = dict(
            os.environ,
            FAKE_DOCKER_DIR=str(self.dir),
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        )

    def set(self, name: str, text: str = "") -> None:
        (self.dir / name).write_text(text)

    def calls(self) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()]

    def run(self, *args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            cwd=cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            check=False,
        )
