"""Where the queue's inputs and outputs live. Everything is a parameter, so tests use tmp dirs.

A project may keep one patch series per upstream base. versions.env lists them in `QUEUE_SERIES`
(comma-separated, the first is the default; without the key there is one series). A series is
named after its base tag and described by pins:

- the default series (e.g. `v0.5.9`): `SGLANG_VERSION`, `SGLANG_TAG`, `SGLANG_WHEEL`,
  `SGLANG_WHEEL_SHA256`; patches in `patches/`, tree `build/sglang`;
- any other series NAME (e.g. `v0.5.23`): the same keys with the name in them,
  `SGLANG_<NAME>_VERSION` ... with NAME upper-cased and every non-alphanumeric character an
  underscore (`SGLANG_V0_5_23_WHEEL_SHA256`); patches in `patches-NAME/`, tree
  `build/sglang-NAME`.

Every series applies as branch `nsa-fp8` on base tag `upstream/<tag>` in its own tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scripts.pins import PinError, read_pins, require

REPO_ROOT = Path(__file__).resolve().parents[2]
BRANCH = "nsa-fp8"
SERIES_KEY = "QUEUE_SERIES"
# The pins that describe one series (suffixes of SGLANG_[<NAME>_]...).
SERIES_PINS = ("VERSION", "TAG", "WHEEL", "WHEEL_SHA256")


def series_names(lock: dict[str, str]) -> list[str]:
    """The series of versions.env, default first."""
    listed = [s.strip() for s in lock.get(SERIES_KEY, "").split(",") if s.strip()]
    default = lock.get("SGLANG_TAG")
    if not listed:
        return [default] if default else []
    if default and listed[0] != default:
        raise PinError(
            f"versions.env: {SERIES_KEY} starts with {listed[0]!r}, but the default series is "
            f"named by SGLANG_TAG={default}: list {default} first"
        )
    return listed


def pin_key(series: str | None, default: str | None, suffix: str) -> str:
    """The versions.env key of pin `suffix` (VERSION, TAG, ...) of a series."""
    if series is None or series == default:
        return f"SGLANG_{suffix}"
    return f"SGLANG_{re.sub(r'[^A-Z0-9]', '_', series.upper())}_{suffix}"


@dataclass(frozen=True)
class QueueConfig:
    root: Path  # the project checkout (holds versions.env, patches/)
    tree: Path  # the upstream git repository the queue applies to (build/sglang)
    patches_dir: Path
    lock: dict[str, str]
    cache_dir: Path  # downloads (wheel)
    reports_dir: Path  # JSON reports
    export_dir: Path
    branch: str = BRANCH
    series_name: str | None = None  # None or the default series: the unprefixed SGLANG_* pins

    @property
    def is_default(self) -> bool:
        return self.series_name is None or self.series_name == self.lock.get("SGLANG_TAG")

    def key(self, suffix: str) -> str:
        """The versions.env key of this series' pin `suffix`, e.g. SGLANG_V0_5_23_WHEEL."""
        return pin_key(None if self.is_default else self.series_name, None, suffix)

    def pin(self, suffix: str) -> str:
        return require(self.lock, self.key(suffix))[0]

    @property
    def report_suffix(self) -> str:
        """'' for the default series (today's report paths), '-NAME' for the others."""
        return "" if self.is_default else f"-{self.series_name}"

    @property
    def series(self) -> Path:
        return self.patches_dir / "series"

    def shown(self, path: Path) -> str:
        """`path` as messages show it: relative to the project root when inside it."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    @property
    def tag(self) -> str:
        return self.pin("TAG")

    @property
    def base_ref(self) -> str:
        """The tag of the base commit in the tree, e.g. `upstream/v0.5.9`."""
        return f"upstream/{self.tag}"

    @classmethod
    def for_root(
        cls, root: Path = REPO_ROOT, series: str | None = None, **overrides: object
    ) -> QueueConfig:
        """The configuration of `series` (default: the first of QUEUE_SERIES)."""
        root = Path(root).resolve()
        pins_path = overrides.pop("pins_path", None) or root / "versions.env"
        lock = read_pins(pins_path)  # type: ignore[arg-type]
        names = series_names(lock)
        if series is not None and series not in names:
            raise PinError(
                f"unknown series {series!r}: versions.env {SERIES_KEY} lists "
                f"{', '.join(names) or 'none'} (SERIES=all for every one)"
            )
        default = not names or series in (None, names[0])
        suffix = "" if default else f"-{series}"
        values: dict[str, object] = dict(
            root=root,
            tree=root / "build" / f"sglang{suffix}",
            patches_dir=root / f"patches{suffix}",
            lock=lock,
            cache_dir=root / "build" / "cache",
            reports_dir=root / "build" / "reports",
            export_dir=root / "build" / "export",
            series_name=None if default else series,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)  # type: ignore[arg-type]
        if not default:
            require(lock, *(cfg.key(s) for s in SERIES_PINS))
            if cfg.tag != series:
                raise PinError(
                    f"versions.env: {cfg.key('TAG')}={cfg.tag}, but a series is named after its "
                    f"base tag: make it {series}, or rename the series"
                )
        return cfg
