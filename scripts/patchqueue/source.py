"""`make source`: the pinned sglang as a git repository with one base commit.

Default route: the PyPI wheel (sha256-verified), its `sglang/` extracted to `python/sglang/` and
committed with a fixed author and date, so the base commit id is the same on every machine.
`--route git`: a shallow clone of the tag, checked against the wheel's RECORD for every file the
series touches (the wheel stays the authority: it is what the sha256 pin covers).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from scripts.patchqueue.config import QueueConfig
from scripts.patchqueue.gitutil import UPSTREAM_EMAIL, UPSTREAM_NAME, git, is_repo, out, rev
from scripts.patchqueue.patchfile import read_patch
from scripts.patchqueue.report import Problem, Report, say
from scripts.patchqueue.series import lint_series
from scripts.pins import require

PKG_PREFIX = "python/"  # wheel path sglang/x.py == repository path python/sglang/x.py
# Paths in the tree that the tooling and the tests create; never part of upstream.
EXCLUDES = "__pycache__/\n*.pyc\n*.orig\n*.rej\n"


class SourceError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_target_args(name: str) -> list[str]:
    """pip options that fetch exactly the pinned wheel file on any machine.

    A pure wheel (py3-none-any) installs everywhere. A binary one (sglang 0.5.23 exists only as
    cp311 manylinux) must be asked for by its tags, or pip on another Python finds nothing.
    """
    parts = name.removesuffix(".whl").split("-")
    if len(parts) < 5:
        raise SourceError(f"{name!r} is not a wheel file name (name-version-py-abi-platform.whl)")
    py, abi, plat = parts[-3:]
    if (py, abi, plat) == ("py3", "none", "any"):
        return []
    args = ["--platform", plat, "--abi", abi]
    m = re.fullmatch(r"(cp|pp)(\d)(\d+)", py)
    if m:
        args += ["--implementation", m.group(1), "--python-version", f"{m.group(2)}.{m.group(3)}"]
    return args


def ensure_wheel(
    cfg: QueueConfig, wheel_file: Path | None = None, only_if_pinned: bool = False
) -> Path:
    """The pinned wheel in the cache: reused if its sha256 matches, else copied or downloaded.

    `only_if_pinned`: use `wheel_file` only if it is this series' wheel (SERIES=all hands one
    local wheel to every series); otherwise a wrong local wheel is an error.
    """
    name, version, want = (cfg.pin(k) for k in ("WHEEL", "VERSION", "WHEEL_SHA256"))
    cached = cfg.cache_dir / name
    if only_if_pinned and wheel_file is not None and sha256_file(wheel_file) != want:
        # SERIES=all passes one local wheel to every series: it serves only its own.
        say(
            "source",
            f"not using {wheel_file}: its sha256 is not {cfg.key('WHEEL_SHA256')} "
            f"(this series pins {name})",
        )
        wheel_file = None
    if cached.is_file():
        if sha256_file(cached) == want:
            say("source", f"cached {cached} (sha256 ok)")
            return cached
        say("source", f"{cached} has the wrong sha256: fetching it again")
        cached.unlink()
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cfg.cache_dir) as tmp:
        if wheel_file is not None:
            say("source", f"using local wheel {wheel_file}")
            got = Path(tmp) / name
            shutil.copyfile(wheel_file, got)
        else:
            say("source", f"downloading {name} from the package index (pip download)")
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
            ]
            cmd += [*wheel_target_args(name), "--dest", tmp, f"sglang=={version}"]
            if subprocess.run(cmd).returncode != 0:
                raise SourceError(
                    f"pip could not download sglang=={version}. Check the network/pip index, or "
                    "pass a local copy: make source SGLANG_WHEEL_FILE=/path/to/" + name
                )
            got = Path(tmp) / name
            if not got.is_file():
                found = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
                raise SourceError(f"pip downloaded {found}, not {name}: check versions.env")
        have = sha256_file(got)
        if have != want:
            raise SourceError(
                f"{name}: sha256 {have} does not match {cfg.key('WHEEL_SHA256')}={want} in "
                "versions.env; "
                "the file is corrupt or not the pinned release"
            )
        os.replace(got, cached)
    say("source", f"{cached} sha256 ok")
    return cached


def read_record(wheel: Path) -> dict[str, str]:
    """RECORD of the wheel: wheel path -> hex sha256 (files without a hash are left out)."""
    with zipfile.ZipFile(wheel) as zf:
        rec_name = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
        if rec_name is None:
            raise SourceError(f"{wheel} has no .dist-info/RECORD")
        text = zf.read(rec_name).decode("utf-8")
    record: dict[str, str] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[1].startswith("sha256="):
            digest = row[1].split("=", 1)[1]
            record[row[0]] = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()
    return record


def extract_package(wheel: Path, dest: Path, record: dict[str, str]) -> datetime:
    """Write the wheel's sglang/ under dest/python/, checking each file against RECORD.

    Returns the newest entry time (the base commit's date: fixed by the wheel's contents).
    """
    newest = datetime(1980, 1, 1, tzinfo=timezone.utc)
    count = 0
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith("sglang/") or info.is_dir():
                continue
            data = zf.read(info)
            if hashlib.sha256(data).hexdigest() != record.get(info.filename):
                raise SourceError(f"{wheel.name}: {info.filename} does not match the wheel RECORD")
            target = dest / PKG_PREFIX / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, 0o755 if mode & 0o100 else 0o644)
            newest = max(newest, datetime(*info.date_time, tzinfo=timezone.utc))
            count += 1
    if count == 0:
        raise SourceError(f"{wheel.name} has no sglang/ package")
    say("source", f"extracted {count} files of sglang/ (all match RECORD)")
    return newest


def _init_repo(tree: Path) -> bool:
    """Create the tree repository if needed; True when it was created now."""
    if is_repo(tree):
        return False
    if tree.exists() and any(tree.iterdir()):
        raise SourceError(f"{tree} exists and is not a git repository: move it away first")
    tree.mkdir(parents=True, exist_ok=True)
    git(tree, "init", "-q")
    return True


def _write_excludes(tree: Path) -> None:
    gitdir = Path(out(tree, "rev-parse", "--absolute-git-dir"))
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "exclude").write_text(EXCLUDES, encoding="utf-8")


def commit_wheel(cfg: QueueConfig, wheel: Path) -> str:
    """Commit the wheel's package as a parentless commit (plumbing: the work tree is untouched)."""
    record = read_record(wheel)
    with tempfile.TemporaryDirectory(dir=cfg.tree.parent) as tmp:
        tmpdir = Path(tmp)
        files = tmpdir / "files"
        newest = extract_package(wheel, files, record)
        gitdir = out(cfg.tree, "rev-parse", "--absolute-git-dir")
        env = {"GIT_INDEX_FILE": str(tmpdir / "index")}
        git(
            files,
            "--git-dir",
            gitdir,
            "--work-tree",
            str(files),
            "add",
            "-A",
            "-f",
            ".",
            env=env,
        )
        tree_id = out(cfg.tree, "write-tree", env=env)
    date = newest.strftime("%Y-%m-%dT%H:%M:%S+0000")
    ident = {
        "GIT_AUTHOR_NAME": UPSTREAM_NAME,
        "GIT_AUTHOR_EMAIL": UPSTREAM_EMAIL,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": UPSTREAM_NAME,
        "GIT_COMMITTER_EMAIL": UPSTREAM_EMAIL,
        "GIT_COMMITTER_DATE": date,
    }
    msg = (
        f"sglang {cfg.tag} (from PyPI wheel {wheel.name})\n\n"
        f"The sglang/ package of the wheel, placed at python/sglang/ as in the upstream "
        f"repository.\nWheel sha256: {cfg.pin('WHEEL_SHA256')}\n"
    )
    return out(cfg.tree, "commit-tree", tree_id, "-m", msg, env=ident)


def series_paths(cfg: QueueConfig) -> set[str]:
    """Every repository path the patches of the series touch (before or after)."""
    entries, _ = lint_series(cfg.patches_dir)
    paths: set[str] = set()
    for e in entries:
        for f in read_patch(cfg.patches_dir / e.name).files:
            paths.update(p for p in (f.old_path, f.new_path) if p)
    return paths


def verify_against_record(
    repo: Path, ref: str, record: dict[str, str], paths: set[str]
) -> list[Problem]:
    """Compare the files `paths` at `ref` with the wheel RECORD (the git route's check)."""
    probs: list[Problem] = []
    for path in sorted(paths):
        if not path.startswith(PKG_PREFIX + "sglang/"):
            probs.append(
                Problem(
                    "not-in-wheel",
                    "outside python/sglang/, so the wheel cannot vouch for it",
                    file=path,
                    severity="warning",
                )
            )
            continue
        wheel_path = str(PurePosixPath(path).relative_to(PKG_PREFIX))
        blob = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "blob", f"{ref}:{path}"],
            capture_output=True,
        )
        want = record.get(wheel_path)
        if blob.returncode != 0:
            if want is not None:
                probs.append(
                    Problem("record-mismatch", "in the wheel but not in the tag", file=path)
                )
            continue  # a file the series adds: absent from both
        if want is None:
            probs.append(Problem("record-mismatch", "in the tag but not in the wheel", file=path))
        elif hashlib.sha256(blob.stdout).hexdigest() != want:
            probs.append(
                Problem(
                    "record-mismatch",
                    "differs from the wheel (RECORD sha256)",
                    file=path,
                )
            )
    return probs


def fetch_git(cfg: QueueConfig, created: bool) -> str:
    (url,) = require(cfg.lock, "SGLANG_GIT_URL")
    tag = cfg.tag
    say("source", f"fetching {tag} from {url} (shallow)")
    proc = git(
        cfg.tree,
        "fetch",
        "--depth",
        "1",
        "--no-tags",
        url,
        f"refs/tags/{tag}",
        check=False,
    )
    if proc.returncode != 0:
        if created:
            shutil.rmtree(cfg.tree)
        raise SourceError(
            f"could not fetch tag {tag} from {url}: {proc.stderr.strip()}\n"
            "Without access to that host use the default route: make source (the PyPI wheel)"
        )
    return out(cfg.tree, "rev-parse", "FETCH_HEAD^{commit}")


def run_source(
    cfg: QueueConfig,
    route: str = "wheel",
    wheel_file: Path | None = None,
    only_if_pinned: bool = False,
) -> Report:
    report = Report("source", data={"route": route, "tree": str(cfg.tree), "base": cfg.base_ref})
    if route not in ("wheel", "git"):
        raise SourceError(f"unknown SGLANG_SOURCE={route!r}: use 'wheel' (default) or 'git'")
    existing = rev(cfg.tree, cfg.base_ref) if is_repo(cfg.tree) else None
    if existing:
        say(
            "source",
            f"{cfg.tree} already has {cfg.base_ref} = {existing[:12]}: nothing to do",
        )
        report.data["commit"] = existing
        return report
    wheel = ensure_wheel(cfg, wheel_file, only_if_pinned)
    created = _init_repo(cfg.tree)
    _write_excludes(cfg.tree)
    if route == "wheel":
        commit = commit_wheel(cfg, wheel)
    else:
        commit = fetch_git(cfg, created)
        paths = series_paths(cfg)
        say(
            "source",
            f"checking {len(paths)} file(s) the series touches against the wheel RECORD",
        )
        probs = verify_against_record(cfg.tree, commit, read_record(wheel), paths)
        report.add(*probs)
        for p in probs:
            say("source", str(p))
        if not report.ok:
            raise SourceError(
                f"the git tag {cfg.tag} differs from the pinned wheel in files the series "
                "touches (listed above): the tag moved or the wrong URL is pinned"
            )
    git(cfg.tree, "tag", "-f", cfg.base_ref, commit)
    if created:
        git(cfg.tree, "checkout", "-q", "-B", "upstream", commit)
    say("source", f"{cfg.base_ref} = {commit[:12]} in {cfg.tree}")
    report.data["commit"] = commit
    return report
