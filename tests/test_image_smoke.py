"""docker/smoke.py against fake package trees: it passes the right image and names what is wrong
with a wrong one. Each case runs the script in a subprocess with the fake tree first on the path,
as the Dockerfile's RUN step runs it."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_image_helpers import DOCKERFILE, ROOT, lock

SMOKE = ROOT / "docker" / "smoke.py"
COMMIT = lock()["TILELANG_ROCM_COMMIT"]
SGLANG_VERSION = lock()["SGLANG_VERSION"]
AITER_VERSION = lock()["AITER_ROCM_VERSION"]
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def load_smoke():
    spec = importlib.util.spec_from_file_location("image_smoke", SMOKE)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


REQUIRED = load_smoke().REQUIRED_SYMBOLS


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_image(
    root: Path,
    *,
    tilelang_version: str = f"0.1.7+rocm.git{COMMIT[:8]}",
    sglang_version: str = SGLANG_VERSION,
    symbols: dict[str, str] | None = None,
    hip: str | None = "7.0.51831",
    aiter_version: str | None = AITER_VERSION,
    tilelang_body: str = "",
) -> Path:
    """A site directory that looks like the image's packages."""
    write(root / "tilelang" / "__init__.py", f"{tilelang_body}__version__ = {tilelang_version!r}\n")
    write(root / "sglang" / "__init__.py", f"__version__ = {sglang_version!r}\n")
    symbols = {m: s for m, s in REQUIRED} if symbols is None else symbols
    for module, symbol in symbols.items():
        write(root / (module.replace(".", "/") + ".py"), f"def {symbol}(*args):\n    return args\n")
    write(
        root / "torch" / "__init__.py",
        f"__version__ = '2.9.0'\nclass version:\n    hip = {hip!r}\n",
    )
    if aiter_version is not None:
        write(root / "aiter" / "__init__.py", "")
        dist = root / f"amd_aiter-{aiter_version}.dist-info"
        write(
            dist / "METADATA", f"Metadata-Version: 2.1\nName: amd-aiter\nVersion: {aiter_version}\n"
        )
    return root


def run_smoke(site: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    args = [
        sys.executable,
        str(SMOKE),
        "--sglang-version",
        SGLANG_VERSION,
        "--tilelang-commit",
        COMMIT,
        "--aiter-version",
        AITER_VERSION,
        "--require-rocm-torch",
        *extra,
    ]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=site, check=False)


def failures(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return re.findall(r"^FAIL ([^:]+):", proc.stdout, flags=re.M)


def test_required_symbols_are_the_patched_entry_points():
    assert REQUIRED == (
        (
            "sglang.srt.layers.attention.nsa.tilelang_fp8_kernel",
            "build_sparse_mla_decode_partial_fp8",
        ),
        ("sglang.srt.mem_cache.fp8_kv_store", "store_mla_kv_fp8_raw"),
    )


def test_matching_image_passes(tmp_path: Path):
    proc = run_smoke(fake_image(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert failures(proc) == []
    assert "smoke: all checks passed" in proc.stdout
    for _, symbol in REQUIRED:
        assert f"ok   symbol {symbol}" in proc.stdout


@pytest.mark.parametrize(
    ("kwargs", "failed"),
    [
        ({"tilelang_version": "0.1.7+rocm.gitebf4a7cb"}, ["tilelang"]),  # the base's old TileLang
        ({"tilelang_version": "0.1.7"}, ["tilelang"]),  # a release wheel, no commit label
        ({"tilelang_body": "raise ImportError('libtvm.so: cannot open')\n"}, ["tilelang"]),
        ({"sglang_version": "0.5.10"}, ["sglang"]),
        ({"hip": None}, ["torch"]),  # a CUDA/CPU torch replaced the base's ROCm build
        ({"aiter_version": "0.1.9"}, ["aiter"]),
        ({"aiter_version": None}, ["aiter"]),
    ],
)
def test_mismatch_fails_and_names_the_check(tmp_path: Path, kwargs: dict, failed: list[str]):
    proc = run_smoke(fake_image(tmp_path, **kwargs))
    assert proc.returncode == 1
    assert failures(proc) == failed
    assert "does not match versions.env" in proc.stdout


def test_missing_symbol_fails(tmp_path: Path):
    (kernel_mod, kernel_sym), (store_mod, store_sym) = REQUIRED
    site = fake_image(tmp_path, symbols={kernel_mod: kernel_sym, store_mod: "store_mla_kv_bf16"})
    proc = run_smoke(site)
    assert proc.returncode == 1
    assert failures(proc) == [f"symbol {store_sym}"]
    assert f"has no {store_sym}" in proc.stdout


def test_missing_module_fails(tmp_path: Path):
    (kernel_mod, kernel_sym), (store_mod, store_sym) = REQUIRED
    proc = run_smoke(fake_image(tmp_path, symbols={store_mod: store_sym}))
    assert proc.returncode == 1
    assert failures(proc) == [f"symbol {kernel_sym}"]
    assert "is the patch series applied" in proc.stdout


def test_not_callable_symbol_fails(tmp_path: Path):
    site = fake_image(tmp_path)
    kernel_mod, kernel_sym = REQUIRED[0]
    write(site / (kernel_mod.replace(".", "/") + ".py"), f"{kernel_sym} = 3\n")
    proc = run_smoke(site)
    assert failures(proc) == [f"symbol {kernel_sym}"]


def git(repo: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def test_tilelang_source_checkout_must_be_the_lock_commit(tmp_path: Path):
    src = tmp_path / "tilelang-src"
    src.mkdir()
    git(src, "init", "-q")
    git(src, "commit", "-q", "--allow-empty", "-m", "not the pinned commit")
    site = fake_image(tmp_path / "site")
    proc = run_smoke(site, "--tilelang-src", str(src))
    assert failures(proc) == ["tilelang"]
    assert f"lock: {COMMIT}" in proc.stdout

    # The same check passes when the checkout is at the commit the smoke step is told about.
    head = git(src, "rev-parse", "HEAD")
    site2 = fake_image(tmp_path / "site2", tilelang_version=f"0.1.7+rocm.git{head[:8]}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site2)
    ok = subprocess.run(
        [
            sys.executable,
            str(SMOKE),
            "--sglang-version",
            SGLANG_VERSION,
            "--tilelang-commit",
            head,
            "--tilelang-src",
            str(src),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_malformed_commit_is_reported(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(fake_image(tmp_path))
    proc = subprocess.run(
        [
            sys.executable,
            str(SMOKE),
            "--sglang-version",
            SGLANG_VERSION,
            "--tilelang-commit",
            "a55a823",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "40 lowercase hex digits" in proc.stdout


def test_dockerfile_runs_the_smoke_step_with_the_lock_values():
    text = DOCKERFILE.read_text()
    run = re.search(r"RUN python3 /opt/sglang-nsa-fp8/smoke\.py(.*?)\n\n", text, flags=re.S)
    assert run, "the Dockerfile must run docker/smoke.py"
    step = run.group(1)
    for flag, arg in [
        ("--sglang-version", "SGLANG_VERSION"),
        ("--tilelang-commit", "TILELANG_ROCM_COMMIT"),
        ("--aiter-version", "AITER_ROCM_VERSION"),
    ]:
        assert f'{flag} "${{{arg}}}"' in step, f"smoke step lacks {flag} from ARG {arg}"
    assert "--tilelang-src /opt/tilelang" in step
    assert "--require-rocm-torch" in step
    # It runs after both installs, so it checks what the image ships.
    assert text.index("smoke.py \\") > text.index("install_sglang.sh /opt")
    assert text.index("install_sglang.sh /opt") > text.index(
        "RUN /opt/sglang-nsa-fp8/install_tilelang.sh"
    )
