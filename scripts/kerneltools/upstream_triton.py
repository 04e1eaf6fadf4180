"""The newest sglang's Triton sparse-MLA decode kernels, loaded from its released wheel at run time.

The benchmark compares our kernels against sglang 0.5.23's `triton_sparse_mla_decode_splitk`
(bf16 and FP8 KV). Its code is not copied into this repository: the wheel of the series that
`SGLANG_BENCH_SERIES` names in versions.env (sha256-pinned) is taken from build/cache (downloaded
with `pip download` if missing), the three modules the kernel needs are extracted to a temporary
folder, and they are executed by path with their three sglang imports stubbed:

    sglang/kernels/ops/attention/metadata.py                 (imports torch, triton only)
    sglang/kernels/ops/attention/dsa/triton_sparse_mla.py    (is_fp8_fnuz, get_device_core_count,
                                                              is_gfx95_supported)
    sglang/kernels/ops/attention/dsa/triton_sparse_mla_decode.py   (the entry point)

The GPU host is offline and the wheel is 39 MB: `python -m scripts.kerneltools.upstream_triton
--extract build/bench-upstream` (on a machine with the wheel) writes just the three modules and a
manifest (the wheel's name and sha256, each file's sha256 from the wheel's RECORD); the loader
takes that folder when the wheel is not in build/cache, and checks every file against it.

Entry point (0.5.23): `triton_sparse_mla_decode_splitk(q_nope [T, H, d_v], q_rope [T, H, d_tail],
kv [N, 1, d_v + d_tail], indices [T, 1, topk] int32, sm_scale, d_v, kv_splits=None,
workspace=None) -> [1, T, H, d_v] bf16`. With an FP8 cache it casts Q to the KV format unscaled
and stores P as FP8(P * fp8_max); it applies no k_scale and masks only `slot < 0`.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

from .loader import install_stub, load_tree_module

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "cache"
EXTRACTED = REPO / "build" / "bench-upstream"
MANIFEST = "manifest.json"
WHEEL_MODULES = {
    "sglang.kernels.ops.attention.metadata": "kernels/ops/attention/metadata.py",
    "sglang.kernels.ops.attention.dsa.triton_sparse_mla": (
        "kernels/ops/attention/dsa/triton_sparse_mla.py"
    ),
    "sglang.kernels.ops.attention.dsa.triton_sparse_mla_decode": (
        "kernels/ops/attention/dsa/triton_sparse_mla_decode.py"
    ),
}
ENTRY_MODULE = "sglang.kernels.ops.attention.dsa.triton_sparse_mla_decode"


class WheelError(RuntimeError):
    pass


def read_pins(path: Path = REPO / "versions.env") -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            pins[key.strip()] = value.strip()
    return pins


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel_pins() -> tuple[str, str, str]:
    """(version, wheel file name, sha256) of the series SGLANG_BENCH_SERIES names: the benchmark
    loads the same pinned wheel the second patch series is built from."""
    pins = read_pins()
    series = pins.get("SGLANG_BENCH_SERIES", "")
    prefix = "SGLANG_" + series.upper().replace(".", "_")
    keys = [f"{prefix}_VERSION", f"{prefix}_WHEEL", f"{prefix}_WHEEL_SHA256"]
    missing = [k for k in ["SGLANG_BENCH_SERIES", *keys] if not pins.get(k)]
    if not missing:
        return pins[keys[0]], pins[keys[1]], pins[keys[2]]
    raise WheelError(f"versions.env lacks {', '.join(missing)}: pin the benchmark's sglang wheel")


def bench_wheel(cache: Path = CACHE, *, download: bool = True) -> Path:
    """The pinned wheel in `cache`, sha256-checked; `pip download` fetches it when missing."""
    version, name, want = wheel_pins()
    path = cache / name
    if not path.is_file() and download:
        cache.mkdir(parents=True, exist_ok=True)
        # The only 0.5.23 file on PyPI is a cp311 manylinux wheel; ask for it by tag so that
        # any interpreter can fetch it (only its pure-Python files are used).
        tags = name[:-4].split("-")[-3:]  # python tag, abi tag, platform tag
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += [f"--python-version={tags[0][2:]}", f"--abi={tags[1]}", f"--platform={tags[2]}"]
        cmd += ["-d", str(cache), f"sglang=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise WheelError(
                f"could not download sglang=={version} ({proc.stderr.strip()[-400:]}); "
                f"put {name} into {cache} by hand (it is sha256-checked)"
            )
    if not path.is_file():
        raise WheelError(f"{path} is missing: `pip download --no-deps sglang=={version}` into it")
    have = sha256_file(path)
    if have != want:
        raise WheelError(
            f"{path}: sha256 {have} does not match the pinned {want} (versions.env); "
            "delete the file to fetch it again"
        )
    return path


def _record_hashes(zf: zipfile.ZipFile) -> dict[str, str]:
    """The wheel's RECORD: member -> hex sha256."""
    record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
    out = {}
    for row in csv.reader(io.StringIO(zf.read(record).decode())):
        if len(row) >= 2 and row[1].startswith("sha256="):
            digest = base64.urlsafe_b64decode(row[1][7:] + "==")
            out[row[0]] = digest.hex()
    return out


def extract_modules(wheel: Path, dest: Path) -> Path:
    """Extract only WHEEL_MODULES into dest/python/sglang/... (the tree layout the loader
    reads), each checked against the wheel's RECORD, plus dest/manifest.json."""
    files = {}
    with zipfile.ZipFile(wheel) as zf:
        record = _record_hashes(zf)
        for rel in WHEEL_MODULES.values():
            member = f"sglang/{rel}"
            try:
                data = zf.read(member)
            except KeyError:
                raise WheelError(f"{wheel.name} has no {member}: the kernel moved") from None
            digest = hashlib.sha256(data).hexdigest()
            if record.get(member) != digest:
                raise WheelError(f"{wheel.name}: {member} does not match the wheel's RECORD")
            out = dest / "python" / "sglang" / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            files[rel] = digest
    manifest = dict(wheel=wheel.name, sha256=sha256_file(wheel), files=files)
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return dest


def check_extracted(folder: Path) -> None:
    """An extracted folder matches the pinned wheel and its files match the manifest."""
    path = folder / MANIFEST
    if not path.is_file():
        raise WheelError(f"{path} is missing: run `python -m {__name__} --extract {folder}`")
    manifest = json.loads(path.read_text())
    pinned = tuple(wheel_pins()[1:])
    if (manifest["wheel"], manifest["sha256"]) != pinned:
        raise WheelError(f"{folder} was extracted from {manifest['wheel']}, not the pinned wheel")
    for rel in WHEEL_MODULES.values():
        file = folder / "python" / "sglang" / rel
        digest = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None
        if digest != manifest["files"].get(rel):
            raise WheelError(f"{file} is missing or changed: extract it again")


def _stub(name: str, **attrs) -> None:
    """Add attributes to a stub module, keeping what another loader put there."""
    mod = sys.modules.get(name)
    if mod is None:
        install_stub(name, **attrs)
        return
    for key, value in attrs.items():
        setattr(mod, key, value)


def load_triton_sparse_mla_decode(
    wheel: Path | None = None,
    *,
    is_fnuz: bool = False,
    is_gfx95: bool = False,
    cu_count: int | None = None,
) -> types.ModuleType:
    """Execute the wheel's decode module (and the two it imports); returns the decode module.

    The stubs answer the three platform questions the module asks at import: the FP8 flavour
    (fnuz on MI300), the device's CU count (queried from torch unless `cu_count` is given) and
    whether the device is gfx950.
    """
    if ENTRY_MODULE in sys.modules:
        return sys.modules[ENTRY_MODULE]
    cached = CACHE / wheel_pins()[1]
    if wheel is None and not cached.is_file() and (EXTRACTED / MANIFEST).is_file():
        check_extracted(EXTRACTED)  # the offline GPU host: the modules were sent along
        tree = EXTRACTED
    else:
        tree = Path(tempfile.mkdtemp(prefix="sglang-bench-wheel-"))
        atexit.register(shutil.rmtree, tree, True)
        extract_modules(wheel or bench_wheel(), tree)

    def core_count(device_index: int = 0) -> int:
        if cu_count is not None:
            return cu_count
        import torch

        return torch.cuda.get_device_properties(device_index).multi_processor_count

    _stub("sglang.kernels.ops.quantization.fp8_kernel", is_fp8_fnuz=lambda: is_fnuz)
    _stub(
        "sglang.srt.utils",
        get_device_core_count=core_count,
        is_gfx95_supported=lambda: is_gfx95,
    )
    for name, rel in WHEEL_MODULES.items():
        module = load_tree_module(tree, rel, name)
    return module


def decode_call(
    module: types.ModuleType, q, kv, indices, sm_scale: float, d_v: int, workspace, **kwargs
):
    """How the benchmark (and the 0.5.23 series' tests) call 0.5.23's decode: q [T, H, d_v +
    d_tail] bf16 split into the (strided) nope and rope views the kernel takes, the cache as
    [N, 1, d_v + d_tail], a caller-owned split-K workspace (a list the kernel grows once, so
    graph replays reuse it); `kwargs` go to the kernel as they are (kv_splits, k_scale)."""
    return module.triton_sparse_mla_decode_splitk(
        q[..., :d_v], q[..., d_v:], kv, indices, sm_scale, d_v, workspace=workspace, **kwargs
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--extract", metavar="DIR", default=str(EXTRACTED), help="[%(default)s]")
    args = ap.parse_args()
    dest = extract_modules(bench_wheel(), Path(args.extract))
    check_extracted(dest)
    print(f"extracted {len(WHEEL_MODULES)} modules of the pinned wheel into {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
