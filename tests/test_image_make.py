"""`make image-print` and `make -n image` render the documented docker command for both arches.

The fragment is exercised in a harness (tmp dir holding versions.env, mk/image.mk, scripts/ and a
patch queue), so the tests do not depend on the state of the real queue; one test also runs the
real top-level Makefile.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.image.queue_hash import queue_hash
from tests.test_image_helpers import DERIVED_ARGS, ROOT, dockerfile_args, lock

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


def make(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def docker_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.startswith("docker build ")]
    assert len(lines) == 1, output
    return lines[0]


def expected_base(arch: str, pins: dict[str, str]) -> str:
    key = arch.upper()
    digest = pins[f"ROCM_BASE_DIGEST_{key}"]
    base = f"{pins['ROCM_BASE_REPO']}:{pins[f'ROCM_BASE_TAG_{key}']}"
    return f"{base}@{digest}" if digest else base


def parse_build(line: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(build args, other options, positionals) of a `docker build` command line."""
    tokens = shlex.split(line)[2:]
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
    assert build_args["BASE_IMAGE"] == expected_base(arch, pins)
    assert build_args["QUEUE_HASH"] == qhash
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


def test_unpinned_base_is_refused_by_make_image(harness: Path):
    pins = lock()
    if pins["ROCM_BASE_DIGEST_GFX942"]:
        pytest.skip("the lock pins a digest; covered by test_preflight_refuses_unpinned_base")
    proc = make(harness, "image", check=False)
    assert proc.returncode != 0
    assert "not pinned by digest" in proc.stderr and "ALLOW_UNPINNED_BASE=1" in proc.stderr
    assert "docker build" not in proc.stdout  # refused before staging or docker


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
