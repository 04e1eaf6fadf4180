"""Pull the base image, settle its digest, and check it carries what versions.env expects.

    python3 -m scripts.image.base --docker docker --base-image REPO:TAG[@sha256:...] \
        --gpu-arch gfx942 --sglang-version 0.5.9 --aiter-version X --out build/image/base-gfx942

A pinned digest (ROCM_BASE_DIGEST_<ARCH> or BASE_IMAGE=...@sha256:...) must be what the pull
returns, else the build is refused. Without a pin the tag is resolved once, here, and that
digest is what the build uses (image label, report); the line to commit to versions.env is
printed. Then docker/base_report.py runs inside the base and compares sglang, aiter, torch (HIP)
and llvm-config with versions.env, so a wrong base fails in seconds instead of after TileLang.

Writes OUT.env (BASE_IMAGE_RESOLVED=..., BASE_DIGEST=..., sourced by mk/image.mk) and OUT.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scripts.image import docker
from scripts.image.docker import DockerError

ROOT = Path(__file__).resolve().parents[2]
BASE_REPORT = ROOT / "docker" / "base_report.py"


class BaseError(Exception):
    """The base image cannot be used; the message says what to do."""


def resolve(docker_cmd: str, base_image: str, arch: str) -> tuple[str, str, str | None]:
    """(image reference with digest, digest, the versions.env line to commit or None)."""
    repo, tag, pinned = docker.split_ref(base_image)
    docker.run(docker_cmd, "pull", base_image)
    found = docker.digest_for_repo(docker.repo_digests(docker_cmd, base_image), repo)
    key = f"ROCM_BASE_DIGEST_{arch.upper()}"
    if pinned:
        if found != pinned:
            raise BaseError(
                f"{base_image}: the pulled image has digest {found or 'none'}, the pin says "
                f"{pinned}. Fix {key} in versions.env (or BASE_IMAGE=) to the digest you mean."
            )
        return base_image, pinned, None
    if not found:
        raise BaseError(f"{base_image}: docker reports no repository digest after the pull")
    print(
        f"image: {base_image} is not pinned; resolved once to {found}, used for this build.\n"
        f"image: to pin it, commit this line to versions.env:\n{key}={found}"
    )
    name = f"{repo}:{tag}" if tag else repo
    return f"{name}@{found}", found, f"{key}={found}"


def check_base(docker_cmd: str, ref: str, sglang: str, aiter: str) -> dict[str, str | None]:
    """Run docker/base_report.py in the base (script on stdin: works with a remote daemon)."""
    args = ["run", "--rm", "-i", "--entrypoint", "python3", ref, "-", "--json"]
    args += ["--expect-sglang", sglang, "--expect-aiter", aiter]
    try:
        out = docker.run(docker_cmd, *args, stdin=BASE_REPORT.read_text())
    except DockerError as exc:
        raise BaseError(f"the base image does not match versions.env:\n{exc}") from exc
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise BaseError(f"docker/base_report.py printed no report in {ref}:\n{out}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pull, pin and check the base image")
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--base-image", required=True)
    parser.add_argument("--gpu-arch", required=True)
    parser.add_argument("--sglang-version", required=True)
    parser.add_argument("--aiter-version", required=True)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.env and OUT.json")
    args = parser.parse_args(argv)
    try:
        ref, digest, pin_line = resolve(args.docker, args.base_image, args.gpu_arch)
        found = check_base(args.docker, ref, args.sglang_version, args.aiter_version)
    except (BaseError, DockerError) as exc:
        print(f"image: error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".env").write_text(f"BASE_IMAGE_RESOLVED={ref}\nBASE_DIGEST={digest}\n")
    record = {"base_image": ref, "base_digest": digest, "pin_line": pin_line, "base": found}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"image: base {ref}: " + ", ".join(f"{k} {v}" for k, v in found.items() if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
