"""After `docker build`: write build/image/image-<arch>.json, what the image is and came from.

    python3 -m scripts.image.record --docker docker --image TAG \
        --base build/image/base-gfx942.json --queue-hash H --gpu-arch gfx942 \
        --out build/image/image-gfx942.json

The record (image tag and id, base reference and digest, queue hash, the base's versions, the
versions.env line to commit when the base was not pinned) is what ci/image.sh hands to the gates
and the pipeline summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scripts.image import docker
from scripts.image.docker import DockerError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="record what `make image` built")
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--image", required=True)
    parser.add_argument("--base", type=Path, required=True, help="scripts.image.base's JSON")
    parser.add_argument("--queue-hash", required=True)
    parser.add_argument("--gpu-arch", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        image_id = docker.run(args.docker, "image", "inspect", "--format", "{{.Id}}", args.image)
    except DockerError as exc:
        print(f"image: error: {exc}", file=sys.stderr)
        return 1
    base = json.loads(args.base.read_text())
    record = {
        "image": args.image,
        "image_id": image_id.strip(),
        "gpu_arch": args.gpu_arch,
        "queue_hash": args.queue_hash,
        **base,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"image: built {args.image} ({record['image_id'][:19]}) from {base['base_image']}")
    if base.get("pin_line"):
        print(f"image: the base was not pinned; commit to versions.env: {base['pin_line']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
