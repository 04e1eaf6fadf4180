"""Layer order of docker/rocm.Dockerfile: a queue edit or an sglang/aiter pin change must not
rebuild TileLang (tens of minutes). Docker's cache rule, modelled here: a changed ARG value
invalidates the first RUN after that ARG's declaration (every RUN sees all declared ARGs), a
changed COPY source invalidates that COPY; everything after the first invalidated step rebuilds.
"""

from __future__ import annotations

import pytest

from tests.test_image_helpers import DOCKERFILE, dockerfile_instructions

TILELANG_RUN = "/opt/sglang-nsa-fp8/install_tilelang.sh"
# What the TileLang layer is allowed to depend on.
TILELANG_INPUTS = {
    "GPU_ARCH",
    "TILELANG_GIT_URL",
    "TILELANG_ROCM_COMMIT",
    "TVM_FFI_GIT_URL",
    "TVM_FFI_ROCM_COMMIT",
    "TILELANG_BUILD_CYTHON_VERSION",
    "TILELANG_BUILD_CMAKE_VERSION",
    "TILELANG_BUILD_NINJA_VERSION",
    "TILELANG_BUILD_SCIKIT_BUILD_CORE_VERSION",
    "TILELANG_BUILD_SETUPTOOLS_VERSION",
    "Z3_SOLVER_VERSION",
}


def after_from(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    first = next(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[first + 1 :]


def first_rebuilt(steps: list[tuple[str, str]], args: set[str], paths: set[str]) -> int:
    """Index (in `steps`) of the first step a change of `args` / context `paths` rebuilds."""
    pending = False
    for i, (word, rest) in enumerate(steps):
        if word == "ARG" and rest.split("=", 1)[0] in args:
            pending = True
        elif word == "RUN" and pending:
            return i
        elif word == "COPY" and any(src in paths for src in rest.split()[:-1]):
            return i
    return len(steps)


def tilelang_index(steps: list[tuple[str, str]]) -> int:
    runs = [i for i, (word, rest) in enumerate(steps) if word == "RUN" and TILELANG_RUN in rest]
    assert len(runs) == 1, "exactly one RUN of install_tilelang.sh"
    return runs[0]


CHANGES = {
    "patch edit": ({"QUEUE_HASH"}, {"python"}),
    "sglang/aiter pin": ({"SGLANG_VERSION", "AITER_ROCM_VERSION"}, set()),
    "tomli pin": ({"TOMLI_VERSION"}, set()),
    "base digest record": ({"BASE_DIGEST"}, set()),
    "smoke script": (set(), {"docker/smoke.py", "docker/install_sglang.sh"}),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_change_rebuilds_only_the_layers_after_tilelang(change: str):
    steps = after_from(dockerfile_instructions())
    args, paths = CHANGES[change]
    assert first_rebuilt(steps, args, paths) > tilelang_index(steps), (
        f"a {change} would rebuild TileLang: declare its ARGs after the TileLang RUN"
    )


def test_tilelang_layer_depends_only_on_its_inputs():
    steps = after_from(dockerfile_instructions())
    declared = {
        rest.split("=", 1)[0] for word, rest in steps[: tilelang_index(steps)] if word == "ARG"
    }
    assert declared == TILELANG_INPUTS, f"ARGs declared before TileLang: {sorted(declared)}"


def test_a_tilelang_pin_change_does_rebuild_tilelang():
    """The model is not vacuous: a TileLang input change reaches the TileLang layer."""
    steps = after_from(dockerfile_instructions())
    assert first_rebuilt(steps, {"TILELANG_ROCM_COMMIT"}, set()) <= tilelang_index(steps)


def test_the_model_catches_the_old_order(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """The order before the fix (ARG QUEUE_HASH with the TileLang args) fails the check."""
    text = DOCKERFILE.read_text()
    text = text.replace("ARG QUEUE_HASH\n", "").replace(
        "ARG GPU_ARCH\n", "ARG GPU_ARCH\nARG QUEUE_HASH\n", 1
    )
    moved = tmp_path / "Dockerfile"
    moved.write_text(text)
    monkeypatch.setattr("tests.test_image_helpers.DOCKERFILE", moved)
    steps = after_from(dockerfile_instructions())
    assert first_rebuilt(steps, {"QUEUE_HASH"}, {"python"}) < tilelang_index(steps)
