"""Every pin the image and the pipeline use comes from versions.env, and only from there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_image_helpers import (
    DERIVED_ARGS,
    DOCKERFILE,
    ROOT,
    WORKFLOWS,
    dockerfile_args,
    lock,
)

# Files that must hold no pin literal: the image recipe and the pipeline.
PIN_FREE_FILES = sorted(
    p
    for p in [
        *ROOT.joinpath("docker").rglob("*"),
        *ROOT.joinpath("ci").rglob("*"),
        *ROOT.joinpath(".github").rglob("*"),
    ]
    if p.is_file() and "__pycache__" not in p.parts
)
# Shapes of a pin literal: a commit, a digest, an exact requirement, an image reference.
PIN_SHAPES = {
    "commit sha": re.compile(r"\b[0-9a-f]{40}\b"),
    "digest": re.compile(r"sha256:[0-9a-f]{8,}"),
    "exact requirement": re.compile(r"[A-Za-z0-9_.-]==[0-9]"),
    "image reference": re.compile(r"\b[a-z0-9-]+/[a-z0-9._-]+:v?[0-9][\w.-]*"),
}
# versions.env keys of the actions the workflows use (`uses:` cannot read variables).
ACTION_KEYS = {
    "actions/checkout": "GHA_CHECKOUT_REF",
    "actions/upload-artifact": "GHA_UPLOAD_ARTIFACT_REF",
}


def test_pin_free_files_exist():
    names = {p.relative_to(ROOT).as_posix() for p in PIN_FREE_FILES}
    assert {"docker/rocm.Dockerfile", "docker/smoke.py", ".github/workflows/pipeline.yml"} <= names


def test_dockerfile_args_are_lock_keys_without_defaults():
    args = dockerfile_args()
    pins = lock()
    assert DERIVED_ARGS <= set(args), f"{sorted(DERIVED_ARGS)} must be build args"
    for name, default in args.items():
        assert default is None, (
            f"ARG {name}={default}: a default duplicates or replaces versions.env"
        )
        if name not in DERIVED_ARGS:
            assert name in pins, f"ARG {name} is not a versions.env key"


def test_dockerfile_uses_every_arg_it_declares():
    text = DOCKERFILE.read_text()
    scripts = "".join(
        (ROOT / "docker" / name).read_text()
        for name in ("install_tilelang.sh", "tilelang_build.sh")
    )
    for name in dockerfile_args():
        used = re.search(rf"\$\{{?{name}\b", text) or re.search(rf"\b{name}\b", scripts)
        assert used, f"ARG {name} is declared but never used"


@pytest.mark.parametrize("path", PIN_FREE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_pin_literal_outside_the_lock(path: Path):
    text = path.read_text(errors="replace")
    for shape, pattern in PIN_SHAPES.items():
        match = pattern.search(text)
        assert match is None, f"{path.name}: {shape} {match.group(0)!r}: move it to versions.env"
    for key, value in lock().items():
        # Short values (v5, 8, true) are not distinctive; the action refs are checked below.
        if len(value) >= 6 and any(ch.isdigit() for ch in value):
            assert value not in text, f"{path.name} repeats {key}={value}: pass it as a build arg"


def test_no_pin_literal_check_catches_a_duplicated_commit(tmp_path: Path):
    sample = f"RUN git checkout {lock()['TILELANG_ROCM_COMMIT']}\n"
    assert PIN_SHAPES["commit sha"].search(sample)
    assert PIN_SHAPES["exact requirement"].search('pip install "cython==0.29.37"')
    assert PIN_SHAPES["image reference"].search("FROM lmsysorg/sglang:v0.5.9-rocm700-mi30x")
    assert not PIN_SHAPES["exact requirement"].search('"cython==$TILELANG_BUILD_CYTHON_VERSION"')


def test_workflow_actions_equal_the_lock():
    pins = lock()
    seen = set()
    for workflow in WORKFLOWS:
        for action, ref in re.findall(r"uses:\s*([\w./-]+)@(\S+)", workflow.read_text()):
            assert action in ACTION_KEYS, (
                f"{workflow.name} uses {action}: add its ref to versions.env"
            )
            key = ACTION_KEYS[action]
            assert ref == pins[key], (
                f"{workflow.name}: {action}@{ref}, versions.env {key}={pins[key]}"
            )
            seen.add(action)
    assert seen == set(ACTION_KEYS)


def test_base_image_pins_are_well_formed():
    pins = lock()
    for arch in ("GFX942", "GFX950"):
        assert pins[f"ROCM_BASE_TAG_{arch}"], f"ROCM_BASE_TAG_{arch} is empty"
        digest = pins[f"ROCM_BASE_DIGEST_{arch}"]
        # Empty means "unknown" (make image then refuses); anything else must be a real digest.
        assert digest == "" or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    assert pins["ROCM_BASE_TAG_GFX942"].endswith("-mi30x")
    assert pins["ROCM_BASE_TAG_GFX950"].endswith("-mi35x")
    assert re.fullmatch(r"[0-9a-f]{40}", pins["TILELANG_ROCM_COMMIT"])
    assert re.fullmatch(r"[0-9a-f]{40}", pins["TVM_FFI_ROCM_COMMIT"])
