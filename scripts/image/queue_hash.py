"""The queue hash that names an image: 12 hex of sha256 over patches/series and its patches.

    python3 -m scripts.image.queue_hash [patches_dir]      # prints e.g. 3f2a9c0d81b7

Any change to the series (order, comments included) or to a listed patch changes the hash, so an
image tag `sglang-nsa-fp8:v0.5.9-q<hash>-gfx942` names exactly one queue state.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from scripts.patchqueue.series import parse_series

HASH_LEN = 12


class QueueHashError(ValueError):
    """The patch queue cannot be hashed (missing series or patch)."""


def series_entries(series: Path) -> list[str]:
    """Patch names of patches/series in order, read by the queue's own parser, so the image
    and `make apply` can never disagree on what the series lists. A line the parser rejects
    stops the hash (the image would otherwise be tagged with a queue nobody can apply)."""
    entries, problems = parse_series(series)
    if problems:
        raise QueueHashError("; ".join(p.message for p in problems) + " (run `make check`)")
    return [e.name for e in entries]


def queue_hash(patches_dir: Path) -> str:
    series = patches_dir / "series"
    if not series.is_file():
        raise QueueHashError(f"{series}: no such file (the queue needs patches/series)")
    digest = hashlib.sha256()
    digest.update(series.read_bytes())
    for name in series_entries(series):
        patch = patches_dir / name
        if not patch.is_file():
            raise QueueHashError(f"{series} lists {name}, but {patch} does not exist")
        # Name and length framing, so moving bytes between patches changes the hash.
        data = patch.read_bytes()
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:HASH_LEN]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    patches_dir = Path(args[0]) if args else Path("patches")
    try:
        print(queue_hash(patches_dir))
    except QueueHashError as exc:
        print(f"queue_hash: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
