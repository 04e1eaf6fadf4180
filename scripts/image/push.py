"""`make image-push REGISTRY=...`: tag the built image for a registry, push it, record the digest.

    python3 -m scripts.image.push --docker docker --image NAME:TAG --registry host/org \
        --out build/image/pushed-gfx942.json

The record holds the pushed reference with the registry's digest (REGISTRY/NAME:TAG@sha256:...),
which is what a deployment should pull.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from scripts.image import docker
from scripts.image.docker import DockerError

_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def push(docker_cmd: str, image: str, registry: str) -> dict[str, str]:
    registry = registry.rstrip("/")
    if not registry or "://" in registry:
        raise DockerError(f"REGISTRY={registry!r}: give host[:port]/namespace, no scheme")
    target = f"{registry}/{image}"
    docker.run(docker_cmd, "tag", image, target)
    out = docker.run(docker_cmd, "push", target)
    repo = docker.split_ref(target)[0]
    digest = docker.digest_for_repo(docker.repo_digests(docker_cmd, target), repo)
    if digest is None:  # older clients: the digest is in the push output
        match = _PUSHED_DIGEST.search(out)
        digest = match.group(1) if match else None
    if digest is None:
        raise DockerError(f"pushed {target}, but docker reports no digest for it")
    return {"image": image, "pushed": target, "digest": digest, "pull": f"{target}@{digest}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tag, push and record the image's digest")
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--image", required=True)
    parser.add_argument("--registry", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.registry:
        print("image-push: error: set REGISTRY=host[:port]/namespace", file=sys.stderr)
        return 2
    try:
        record = push(args.docker, args.image, args.registry)
    except DockerError as exc:
        print(f"image-push: error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"image-push: {record['pull']} (recorded in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
