"""Problems found by the tooling, and the JSON reports written for CI and for people."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Problem:
    kind: str  # short machine-readable slug, e.g. "offset", "unlisted-patch"
    message: str  # what is wrong and what to do
    patch: str | None = None
    file: str | None = None
    line: int | None = None
    hunk: int | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = ": ".join(x for x in (self.patch, self._loc()) if x)
        return f"{self.severity}: {where + ': ' if where else ''}{self.message}"

    def _loc(self) -> str:
        if not self.file:
            return ""
        loc = self.file + (f":{self.line}" if self.line else "")
        return loc + (f" (hunk #{self.hunk})" if self.hunk else "")


@dataclass
class Report:
    command: str
    problems: list[Problem] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def add(self, *problems: Problem) -> None:
        self.problems.extend(problems)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "command": self.command,
            "ok": self.ok,
            **self.data,
            "problems": [asdict(p) for p in self.problems],
        }
        path.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def say(tag: str, msg: str) -> None:
    """One progress line, flushed at once (make shows it while the step runs)."""
    print(f"[{tag}] {msg}", flush=True)


def warn(tag: str, msg: str) -> None:
    print(f"[{tag}] {msg}", file=sys.stderr, flush=True)
