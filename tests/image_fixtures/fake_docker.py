#!/usr/bin/env python3
"""A stand-in `docker` CLI for the image and CI tests: it records every call and answers from
files in $FAKE_DOCKER_DIR, so `make image`, ci/*.sh and scripts/image run end to end without a
Docker engine.

    calls.jsonl     one JSON argv list per call (appended; stdin length recorded for `run -i`)
    daemon_down     if present, `docker info` fails like an unreachable daemon
    digest          the digest `image inspect` reports for the pulled/pushed repositories
    base.json       what `docker run ... python3 -` (docker/base_report.py) prints
    base_fails      if present, that run exits 1 (the base does not match versions.env)
    ps              lines `docker ps` prints (names or ids)
    run_rc          exit status of a foreground `docker run` (default 0)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_DOCKER_DIR"])


def read(name: str, default: str = "") -> str:
    path = STATE / name
    return path.read_text() if path.is_file() else default


def main(argv: list[str]) -> int:
    call = {"argv": argv}
    if "-i" in argv and argv[:1] == ["run"]:
        call["stdin_chars"] = len(sys.stdin.read())
    with (STATE / "calls.jsonl").open("a") as f:
        f.write(json.dumps(call) + "\n")
    cmd = argv[0] if argv else ""
    if cmd == "info":
        if (STATE / "daemon_down").exists():
            print(
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
                file=sys.stderr,
            )
            return 1
        print("27.0.1")
        return 0
    if cmd == "image" and argv[1] == "inspect":
        fmt = argv[argv.index("--format") + 1] if "--format" in argv else ""
        ref = argv[-1]
        if "RepoDigests" in fmt:
            digest = read("digest").strip()
            repo = ref.split("@", 1)[0].rsplit(":", 1)[0] if "/" in ref else ref
            print(f"{repo}@{digest}" if digest else "")
            return 0
        print("sha256:" + "1d" * 32)
        return 0
    if cmd == "push":
        print(f"latest: digest: {read('digest').strip()} size: 5123")
        return 0
    if cmd == "run":
        if "-i" in argv:
            print(read("base.json", "{}").strip())
            return 1 if (STATE / "base_fails").exists() else 0
        return int(read("run_rc", "0") or 0)
    if cmd == "ps":
        sys.stdout.write(read("ps"))
        return 0
    return 0  # pull, build, tag, rm, logs, inspect: recorded only


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
