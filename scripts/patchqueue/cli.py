"""Command line: `python -m scripts.patchqueue [--series NAME|all] [paths] <command>`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.patchqueue.apply import QueueError, run_apply
from scripts.patchqueue.check import run_check
from scripts.patchqueue.config import REPO_ROOT, QueueConfig, series_names
from scripts.patchqueue.export import run_export
from scripts.patchqueue.formatting import run_format
from scripts.patchqueue.gitutil import GitError
from scripts.patchqueue.refresh import run_refresh
from scripts.patchqueue.report import Problem, Report, say, warn
from scripts.patchqueue.source import SourceError, run_source
from scripts.pins import PinError, read_pins

# Commands that write build/reports/queue-<command>.json and print their problems.
REPORTED = ("apply", "check", "format")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m scripts.patchqueue", description=__doc__)
    ap.add_argument(
        "--root",
        type=Path,
        default=REPO_ROOT,
        help="project checkout (default: this one)",
    )
    ap.add_argument(
        "--series",
        help="the series to work on, named by its base tag (default: the first of "
        "QUEUE_SERIES in versions.env); `all`: every series (source, apply, check, format)",
    )
    ap.add_argument("--tree", type=Path, help="upstream git tree (default: ROOT/build/sglang)")
    ap.add_argument(
        "--patches",
        dest="patches_dir",
        type=Path,
        help="patch dir (default: ROOT/patches)",
    )
    ap.add_argument(
        "--lock",
        dest="pins_path",
        type=Path,
        help="pin file (default: ROOT/versions.env)",
    )
    ap.add_argument(
        "--cache",
        dest="cache_dir",
        type=Path,
        help="download cache (default: ROOT/build/cache)",
    )
    ap.add_argument(
        "--reports",
        dest="reports_dir",
        type=Path,
        help="JSON reports (default: ROOT/build/reports)",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    src = sub.add_parser("source", help="fetch the pinned sglang into the tree as one base commit")
    src.add_argument("--route", choices=["wheel", "git"], default="wheel")
    src.add_argument("--wheel-file", type=Path, help="use this local copy of the pinned wheel")
    app = sub.add_parser("apply", help="git am patches/series onto a fresh branch at the base")
    app.add_argument(
        "--force",
        action="store_true",
        help="save a differing branch/dirty tree, then apply",
    )
    sub.add_parser("check", help="lint the queue and replay it patch by patch")
    sub.add_parser(
        "format",
        help="black + isort (sglang's pinned configuration) on the files the series touches; "
        "run it with the interpreter that has them (the .venv)",
    )
    ref = sub.add_parser("refresh", help="write the branch's commits back into patches/")
    ref.add_argument(
        "--allow-drop",
        action="store_true",
        help="let refresh delete patch files the branch lacks, or overwrite hand edits",
    )
    exp = sub.add_parser("export", help="upstream-ready branch + mbox with cover letter")
    exp.add_argument("--out", dest="export_dir", type=Path, help="default: ROOT/build/export")
    exp.add_argument("--title", help="cover letter subject")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        k: getattr(args, k, None)
        for k in (
            "tree",
            "patches_dir",
            "pins_path",
            "cache_dir",
            "reports_dir",
            "export_dir",
        )
    }
    try:
        names = _series(args)
    except PinError as exc:
        warn(args.cmd, f"ERROR: {exc}")
        return 1
    rc = 0
    for name in names:
        if len(names) > 1:
            say(args.cmd, f"--- series {name}")
        rc = max(rc, _run_one(args, name, dict(overrides), several=len(names) > 1))
    return rc


def _series(args: argparse.Namespace) -> list[str | None]:
    """The series to run on: one name, None (the default), or every one for `all`."""
    if args.series != "all":
        return [args.series]
    if args.cmd in ("refresh", "export"):
        raise PinError(f"{args.cmd} works on one series: pass SERIES=<name>, not all")
    lock = read_pins(args.pins_path or Path(args.root).resolve() / "versions.env")
    return list(series_names(lock))


def _run_one(
    args: argparse.Namespace, series: str | None, overrides: dict, several: bool = False
) -> int:
    cfg = None
    try:
        cfg = QueueConfig.for_root(args.root, series, **overrides)
        if args.cmd == "source":
            report = run_source(cfg, args.route, args.wheel_file, only_if_pinned=several)
        elif args.cmd == "apply":
            report = run_apply(cfg, force=args.force)
        elif args.cmd == "check":
            report = run_check(cfg)
        elif args.cmd == "format":
            report = run_format(cfg)
        elif args.cmd == "refresh":
            report = run_refresh(cfg, allow_drop=args.allow_drop)
        else:
            report = run_export(cfg, args.title)
    except (QueueError, SourceError, PinError, GitError) as exc:
        warn(args.cmd, f"ERROR: {exc}")
        if args.cmd in REPORTED:
            failed = Report(args.cmd)
            failed.add(Problem("refused", str(exc)))
            failed.write(_report_path(args, cfg))
        return 1
    if args.cmd in REPORTED:
        path = _report_path(args, cfg)
        report.write(path)
        for p in report.problems:
            (say if p.severity != "error" else warn)(args.cmd, str(p))
        verdict = (
            "ok"
            if report.ok
            else f"FAILED ({sum(p.severity == 'error' for p in report.problems)} error(s))"
        )
        say(args.cmd, f"{verdict}; report: {path}")
    return 0 if report.ok else 1


def _report_path(args: argparse.Namespace, cfg: QueueConfig | None) -> Path:
    """build/reports/queue-<cmd>.json; other series than the default add -<name>."""
    reports = args.reports_dir or Path(args.root).resolve() / "build" / "reports"
    suffix = cfg.report_suffix if cfg else (f"-{args.series}" if args.series else "")
    return Path(reports) / f"queue-{args.cmd}{suffix}.json"


if __name__ == "__main__":
    sys.exit(main())
