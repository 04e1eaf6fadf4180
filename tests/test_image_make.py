"""`make image-print` and `make -n image` render the documented docker command for both arches;
`make image` and `make image-push` run end to end against a fake docker CLI
(tests/image_fixtures/fake_docker.py): daemon check before staging, the base digest pinned or
resolved once and recorded, a base that does not match versions.env refused, the pushed digest kept.

The fragment is exercised in a harness (tmp dir holding versions.env, mk/image.mk, scripts/ and a
patch queue), so the tests do not depend on the state of the real queue; one test also runs the
real top-level Makefile.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.image.queue_hash import queue_hash
from tests.test_image_helpers import DERIVED_ARGS, ROOT, FakeDocker, dockerfile_args, lock

HARNESS_MAKEFILE = "include versions.env\ninclude mk/image.mk\n"
ARCHES = ("gfx942", "gfx950")


@pytest.fixture
def harness(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "versions.env", tmp_path / "versions.env")
    (tmp_path / "mk").mkdir()
    shutil.copy(ROOT / "mk" / "image.mk", tmp_path / "mk" / "image.mk")
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    (tmp_path / "docker").symlink_to(ROOT / "docker")
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-a.patch").write_text("Subject: a\n\n---\n")
    (patches / "series").write_text("# queue\n0001-a.patch\n")
    (tmp_path / "Makefile").write_text(HARNESS_MAKEFILE)
    return tmp_path


def make(
    cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def docker_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.lstrip("@ ").startswith("docker build ")]
    assert len(lines) == 1, output
    return lines[0]


def expected_base(arch: str, pins: dict[str, str]) -> str:
    key = arch.upper()
    digest = pins[f"ROCM_BASE_DIGEST_{key}"]
    base = f"{pins['ROCM_BASE_REPO']}:{pins[f'ROCM_BASE_TAG_{key}']}"
    return f"{base}@{digest}" if digest else base


def parse_build(line: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(build args, other options, positionals) of a `docker build` command line."""
    tokens = shlex.split(line, posix=True)[2:]
    build_args: dict[str, str] = {}
    options: dict[str, str] = {}
    positionals: list[str] = []
    it = iter(tokens)
    for tok in it:
        if tok == "--build-arg":
            key, _, value = next(it).partition("=")
            assert key not in build_args, f"--build-arg {key} given twice"
            build_args[key] = value
        elif tok.startswith("-"):
            options[tok] = next(it)
        else:
            positionals.append(tok)
    return build_args, options, positionals


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("how", ["image-print", "-n image"])
def test_rendered_command_passes_the_lock(harness: Path, arch: str, how: str):
    pins = lock()
    out = make(harness, *how.split(), f"GPU_ARCH={arch}").stdout
    build_args, options, positionals = parse_build(docker_line(out))
    qhash = queue_hash(harness / "patches")

    # Exactly the Dockerfile's ARGs, each with its versions.env value.
    assert set(build_args) == set(dockerfile_args())
    for key, value in build_args.items():
        if key not in DERIVED_ARGS:
            assert value == pins[key], f"--build-arg {key}={value}, versions.env says {pins[key]}"
    assert build_args["GPU_ARCH"] == arch
    assert build_args["QUEUE_HASH"] == qhash
    if how == "image-print":
        assert build_args["BASE_IMAGE"] == expected_base(arch, pins)
    else:  # `make image` builds from the digest scripts.image.base pulled and recorded
        env_file = f"build/image/base-{arch}.env"
        assert build_args["BASE_IMAGE"] == f"$(sed -n 's/^BASE_IMAGE_RESOLVED=//p' {env_file})"
        assert build_args["BASE_DIGEST"] == f"$(sed -n 's/^BASE_DIGEST=//p' {env_file})"
    assert options == {
        "-f": "docker/rocm.Dockerfile",
        "-t": f"sglang-nsa-fp8:{pins['SGLANG_TAG']}-q{qhash}-{arch}",
    }
    assert positionals == ["build/image/context"]


def test_dry_run_shows_staging_and_runs_nothing(harness: Path):
    out = make(harness, "-n", "image", "GPU_ARCH=gfx950").stdout
    assert "cp -a build/sglang/python build/image/context/python" in out
    assert "scripts.image.preflight" in out
    assert not (harness / "build").exists()


def test_queue_change_changes_the_tag(harness: Path):
    before = make(harness, "image-tag").stdout.strip()
    (harness / "patches" / "0001-a.patch").write_text("Subject: a, edited\n\n---\n")
    after = make(harness, "image-tag").stdout.strip()
    assert re.fullmatch(r"sglang-nsa-fp8:v[\d.]+-q[0-9a-f]{12}-gfx942", before)
    assert before != after


def test_base_image_override(harness: Path):
    digest = "sha256:" + "ab" * 32
    out = make(harness, "image-print", f"BASE_IMAGE=example/base:1@{digest}").stdout
    assert parse_build(docker_line(out))[0]["BASE_IMAGE"] == f"example/base:1@{digest}"


def test_unknown_arch_is_refused(harness: Path):
    proc = make(harness, "image-print", "GPU_ARCH=gfx90a", check=False)
    assert proc.returncode != 0
    assert "GPU_ARCH='gfx90a' is not supported" in proc.stderr


def test_missing_series_stops_make(harness: Path):
    (harness / "patches" / "series").unlink()
    proc = make(harness, "image-print", check=False)
    assert proc.returncode != 0
    assert "cannot compute the queue hash" in proc.stderr


def test_documented_command_matches(harness: Path):
    """docs/image.md shows the command make renders for gfx942, queue hash as <hash>."""
    doc = (ROOT / "docs" / "image.md").read_text()
    block = re.search(r"```sh\n# make image-print\n(docker build [^\n]+)\n```", doc)
    assert block, "docs/image.md lacks the '# make image-print' command block"
    rendered = docker_line(make(harness, "image-print").stdout)
    rendered = rendered.replace(queue_hash(harness / "patches"), "<hash>")
    assert block.group(1) == rendered


def test_real_makefile_renders_the_command():
    if not (ROOT / "Makefile").is_file():
        pytest.fail("the top-level Makefile is missing: it must `include versions.env` and mk/*.mk")
    if not (ROOT / "patches" / "series").is_file():
        pytest.fail("patches/series is missing: the image tag needs the queue hash")
    for arch in ARCHES:
        out = make(ROOT, "-n", "image", f"GPU_ARCH={arch}").stdout
        build_args, options, _ = parse_build(docker_line(out))
        assert build_args["GPU_ARCH"] == arch
        assert options["-t"].endswith(f"-{arch}")
        assert build_args["QUEUE_HASH"] == queue_hash(ROOT / "patches")


# --- make image / image-push against a fake docker ----------------------------------------------

DIGEST = "sha256:" + "be" * 32
BASE_OK = {"sglang": "0.5.9", "amd-aiter": "x", "torch": "2.9.0", "torch_hip": "7.0"}


@pytest.fixture
def docker(harness: Path, tmp_path: Path) -> FakeDocker:
    fake = FakeDocker(tmp_path)
    fake.set("digest", DIGEST)
    fake.set("base.json", json.dumps(BASE_OK))
    tree = harness / "build" / "sglang" / "python" / "sglang"
    tree.mkdir(parents=True)
    (tree / "__init__.py").write_text("")
    return fake


def make_image(harness: Path, docker: FakeDocker, *args: str) -> subprocess.CompletedProcess[str]:
    return make(harness, "image", "ALLOW_STALE_TREE=1", *args, check=False, env=docker.env)


def verbs(docker: FakeDocker) -> list[str]:
    return [c[0] for c in docker.calls()]


def test_unreachable_daemon_stops_before_staging(harness: Path, docker: FakeDocker):
    docker.set("daemon_down")
    proc = make_image(harness, docker)
    assert proc.returncode != 0
    assert "no reachable Docker daemon" in proc.stderr and 'DOCKER="sudo docker"' in proc.stderr
    assert verbs(docker) == ["info"]
    assert not (harness / "build" / "image" / "context").exists()


def test_unpinned_base_is_resolved_once_recorded_and_printed(harness: Path, docker: FakeDocker):
    pins = lock()
    if pins["ROCM_BASE_DIGEST_GFX942"]:
        pytest.skip("the lock pins gfx942; the pinned path is tested below")
    proc = make_image(harness, docker)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tag = f"{pins['ROCM_BASE_REPO']}:{pins['ROCM_BASE_TAG_GFX942']}"
    assert f"ROCM_BASE_DIGEST_GFX942={DIGEST}" in proc.stdout  # the line to commit
    assert ["pull", tag] in docker.calls()
    build = next(c for c in docker.calls() if c[0] == "build")
    assert f"BASE_IMAGE={tag}@{DIGEST}" in build and f"BASE_DIGEST={DIGEST}" in build
    record = json.loads((harness / "build" / "image" / "image-gfx942.json").read_text())
    assert record["base_image"] == f"{tag}@{DIGEST}" and record["base_digest"] == DIGEST
    assert record["pin_line"] == f"ROCM_BASE_DIGEST_GFX942={DIGEST}"
    assert record["base"]["sglang"] == "0.5.9" and record["image_id"].startswith("sha256:")


def test_pinned_digest_that_does_not_match_is_refused(harness: Path, docker: FakeDocker):
    pinned = "sha256:" + "0a" * 32
    proc = make_image(harness, docker, f"BASE_IMAGE=example/base:1@{pinned}")
    assert proc.returncode != 0
    assert f"the pin says {pinned}" in proc.stderr and DIGEST in proc.stderr
    assert "build" not in verbs(docker)


def test_pinned_digest_that_matches_builds(harness: Path, docker: FakeDocker):
    proc = make_image(harness, docker, f"BASE_IMAGE=example/base:1@{DIGEST}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "commit this line" not in proc.stdout
    build = next(c for c in docker.calls() if c[0] == "build")
    assert f"BASE_IMAGE=example/base:1@{DIGEST}" in build


def test_base_that_does_not_match_the_lock_is_refused(harness: Path, docker: FakeDocker):
    docker.set("base_fails")
    proc = make_image(harness, docker)
    assert proc.returncode != 0
    assert "does not match versions.env" in proc.stderr
    assert "build" not in verbs(docker)
    assert not (harness / "build" / "image" / "context").exists()


def test_image_push_tags_pushes_and_records_the_digest(harness: Path, docker: FakeDocker):
    tag = make(harness, "image-tag").stdout.strip()
    proc = make(
        harness, "image-push", "REGISTRY=registry.example:5000/ml", check=False, env=docker.env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = f"registry.example:5000/ml/{tag}"
    assert ["tag", tag, target] in docker.calls() and ["push", target] in docker.calls()
    record = json.loads((harness / "build" / "image" / "pushed-gfx942.json").read_text())
    assert record["digest"] == DIGEST and record["pull"] == f"{target}@{DIGEST}"


def test_image_push_needs_a_registry(harness: Path, docker: FakeDocker):
    proc = make(harness, "image-push", check=False, env=docker.env)
    assert proc.returncode != 0 and "set REGISTRY=" in proc.stderr
    assert docker.calls() == []
