"""Running the docker CLI from the image helpers: one place for the command prefix and errors."""

from __future__ import annotations

import shlex
import subprocess


class DockerError(Exception):
    """A docker command failed; the message says which and what to do."""


def docker_argv(docker: str) -> list[str]:
    """`DOCKER` as make passes it, e.g. "docker" or "sudo docker"."""
    argv = shlex.split(docker)
    if not argv:
        raise DockerError("DOCKER is empty: set it to the docker command (e.g. DOCKER=docker)")
    return argv


def run(docker: str, *args: str, stdin: str | None = None) -> str:
    """stdout of `docker ARGS...`; DockerError with its stderr when it fails."""
    argv = [*docker_argv(docker), *args]
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DockerError(f"cannot run {argv[0]!r} ({exc}): install Docker or set DOCKER=") from exc
    if proc.returncode != 0:
        raise DockerError(
            f"`{shlex.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout


def check_daemon(docker: str) -> str:
    """The daemon's version, or DockerError saying how to reach one."""
    try:
        return run(docker, "info", "--format", "{{.ServerVersion}}").strip()
    except DockerError as exc:
        raise DockerError(
            f"no reachable Docker daemon: {exc}\n  Start it (systemctl start docker), add this "
            'user to the docker group, or pass DOCKER="sudo docker"; DOCKER_HOST selects a '
            "remote daemon."
        ) from exc


def repo_digests(docker: str, ref: str) -> list[str]:
    """RepoDigests of a local image, e.g. ["lmsysorg/sglang@sha256:..."]."""
    template = "{{range .RepoDigests}}{{println .}}{{end}}"
    out = run(docker, "image", "inspect", "--format", template, ref)
    return [line.strip() for line in out.splitlines() if line.strip()]


def split_ref(ref: str) -> tuple[str, str, str]:
    """'repo:tag@sha256:x' -> (repo, tag, digest); missing parts are ''."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def digest_for_repo(digests: list[str], repo: str) -> str | None:
    """The sha256 digest RepoDigests lists for `repo` (docker.io/library prefixes ignored)."""

    def norm(name: str) -> str:
        for prefix in ("docker.io/", "index.docker.io/"):
            name = name.removeprefix(prefix)
        return name.removeprefix("library/")

    for entry in digests:
        name, _, digest = entry.partition("@")
        if norm(name) == norm(repo) and digest.startswith("sha256:"):
            return digest
    return None
