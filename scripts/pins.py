"""Read versions.env, the project's only pin file, into a dict.

The format is the common subset of make, shell and docker build args: `KEY=value` lines, `#`
comments, blank lines; no quotes, no spaces around `=`, no `export`. Anything else is an error
(a pin that make and Python would read differently is worse than a crash).
"""

from __future__ import annotations

import re
from pathlib import Path

PINS_PATH = Path(__file__).resolve().parent.parent / "versions.env"
# No quotes, `$` or backslashes: make, Python and docker would each read those differently.
_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=([^\s\"'$\\`]*)$")


class PinError(ValueError):
    """versions.env is malformed or lacks a key."""


def read_pins(path: str | Path | None = None) -> dict[str, str]:
    """Return every KEY=value pin of `path` (default: the repository's versions.env)."""
    pins_path = Path(path) if path is not None else PINS_PATH
    try:
        text = pins_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PinError(f"{pins_path}: no such file (the pin file lives at the repo root)") from None
    pins: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise PinError(
                f"{pins_path}:{lineno}: {raw!r} is not KEY=value "
                "(upper-case key; no quotes, spaces, $ or 'export')"
            )
        key, value = match.groups()
        if key in pins:
            raise PinError(f"{pins_path}:{lineno}: {key} is pinned twice")
        pins[key] = value
    return pins


def require(pins: dict[str, str], *keys: str) -> list[str]:
    """Return the values of `keys`, with one error naming every missing key."""
    missing = [k for k in keys if not pins.get(k)]
    if missing:
        raise PinError(f"versions.env lacks {', '.join(missing)}: add the pin(s) there")
    return [pins[k] for k in keys]
