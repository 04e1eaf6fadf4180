"""Load single modules of the patched sglang tree by file path, without importing sglang.

Importing through the package pulls in ~230 sglang modules and a long list of third-party
packages (DESIGN.md §10.1). The modules this project adds are written to import only torch,
triton and tilelang at module level; the few sglang helpers a patched upstream module imports
are replaced by explicit stubs here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Mapping

SGLANG_PKG = Path("python") / "sglang"


@contextlib.contextmanager
def restored_sys_modules() -> Iterator[None]:
    """Undo every sglang* module registration made inside the block."""
    before = dict(sys.modules)
    try:
        yield
    finally:
        for name in set(sys.modules) - set(before):
            if name.startswith("sglang"):
                del sys.modules[name]
        sys.modules.update({k: v for k, v in before.items() if k.startswith("sglang")})


def _ensure_package(name: str) -> None:
    """Register an empty namespace package so that `import a.b.c` finds its parents."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        pkg = ".".join(parts[:i])
        if pkg not in sys.modules:
            mod = types.ModuleType(pkg)
            mod.__path__ = []  # a package with no files: only registered children resolve
            sys.modules[pkg] = mod


def install_stub(name: str, **attrs: Any) -> types.ModuleType:
    """Put a stub module `name` with the given attributes into sys.modules."""
    parent = name.rpartition(".")[0]
    if parent:
        _ensure_package(parent)
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    sys.modules[name] = mod
    return mod


def load_tree_module(
    tree: Path,
    relpath: str,
    module_name: str,
    stubs: Mapping[str, Mapping[str, Any]] | None = None,
) -> types.ModuleType:
    """Execute `<tree>/python/sglang/<relpath>` as module `module_name`.

    `stubs` maps module names to attribute dicts installed before execution (for example
    `{"sglang.srt.utils": {"is_hip": lambda: False}}`). The module is registered under
    `module_name` so that dataclasses and pickling work.
    """
    path = Path(tree) / SGLANG_PKG / relpath
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is the patch that adds it applied?")
    return load_module_file(path, module_name, stubs)


def tree_file_text(tree: Path, relpath: str, rev: str | None = None) -> str:
    """`<tree>/python/sglang/<relpath>` as in the work tree, or at git revision `rev` (e.g.
    `upstream/v0.5.9`, the unpatched base that `make apply` leaves in the tree)."""
    if rev is None:
        return (Path(tree) / SGLANG_PKG / relpath).read_text()
    spec = f"{rev}:{(SGLANG_PKG / relpath).as_posix()}"
    proc = subprocess.run(
        ["git", "-C", str(tree), "show", spec], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise FileNotFoundError(
            f"git show {spec} in {tree} failed: {proc.stderr.strip()} "
            "(run `make apply`, which creates the upstream/<tag> base)"
        )
    return proc.stdout


def load_module_file(
    path: Path, module_name: str, stubs: Mapping[str, Mapping[str, Any]] | None = None
) -> types.ModuleType:
    """Execute the Python file `path` as module `module_name` (registered in sys.modules).

    A file, not a string: TileLang's `T.prim_func` re-reads the function source from it."""
    for name, attrs in (stubs or {}).items():
        install_stub(name, **attrs)
    parent = module_name.rpartition(".")[0]
    if parent:
        _ensure_package(parent)
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
