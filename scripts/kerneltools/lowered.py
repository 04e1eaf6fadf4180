"""Facts read from a kernel's lowered device source (CUDA or HIP, as TileLang generates it).

Two facts, both from the code the compiler is given rather than from the Python kernel:

- `shared_memory_bytes`: the shared memory (LDS) a workgroup asks for: TileLang's dynamic
  buffer plus every static `__shared__` array the source declares.
- `reduction_hazards`: the tilelang 0.1.9 race (docs/kernels.md). A cross-warp reduction
  (`tl::AllReduce<...>::run(x, scratch)`) exchanges values through a shared scratch buffer and
  returns right after its last read of it, without a barrier. If any thread can then reach a
  write to shared memory that overlaps the scratch without passing a block-wide barrier, a fast
  warp may overwrite values a slow warp has not read yet. For every such reduction this walks
  the code paths after it (through loop back-edges and into nested blocks) and reports the
  first write whose byte range overlaps the scratch before a barrier. The next reduction on a
  scratch starts with a barrier, so it ends a path too.

Address ranges come from the index expressions: `threadIdx.x` and the counters of enclosing
constant-bound loops are enumerated; anything the analysis cannot bound (a data-dependent
index, an unknown call taking a shared pointer) is assumed to overlap, so an unknown can only
make the check stricter.

Standard library + numpy only: it runs under either TileLang venv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

# Bytes per element of the scalar types TileLang emits (vector types are parsed below).
SCALAR_BYTES = {
    "float": 4,
    "int": 4,
    "uint": 4,
    "unsigned": 4,
    "int32_t": 4,
    "uint32_t": 4,
    "double": 8,
    "int64_t": 8,
    "uint64_t": 8,
    "half_t": 2,
    "half": 2,
    "bfloat16_t": 2,
    "short": 2,
    "char": 1,
    "uchar": 1,
    "signed char": 1,
    "bool": 1,
    "int8_t": 1,
    "uint8_t": 1,
}
_VECTOR = re.compile(r"^(float|int|uint|half|bfloat16|short|char|uchar|longlong|double)(\d)$")
_FP8_VECTOR = re.compile(r"^fp8_e[45]_(\d+)_t$")
_FP8_SCALAR = re.compile(r"^fp8_e[45]_t$")
_VECTOR_BASE = {"longlong": 8, "double": 8, "half": 2, "bfloat16": 2, "short": 2, "char": 1}


def type_bytes(name: str) -> int | None:
    """sizeof(name) for the types in TileLang's CUDA/HIP output; None if unknown."""
    name = " ".join(name.replace("__restrict__", "").split())
    if name in SCALAR_BYTES:
        return SCALAR_BYTES[name]
    if _FP8_SCALAR.match(name):
        return 1
    if m := _FP8_VECTOR.match(name):
        return int(m.group(1))
    if m := _VECTOR.match(name):
        return _VECTOR_BASE.get(m.group(1), 4) * int(m.group(2))
    return None


BARRIER = re.compile(r"__syncthreads\(\)|__builtin_amdgcn_s_barrier\(\)|\bbar\.sync\b")
ALL_REDUCE = re.compile(r"tl::AllReduce<(?P<args>[^;]*?)>::(?P<fn>run_batch|run)\((?P<call>.*)\);")
LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\((\d+)")
DYN_DECL = re.compile(r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?\w+\s+(\w+)\[\]")
STATIC_DECL = re.compile(
    r"^\s*__shared__\s+(?:__align__\(\d+\)\s+)?(?P<type>[\w ]+?)\s+(?P<name>\w+)\[(?P<n>\d+)\];"
)
# void* q_shared = ((void*)((char*)buf_dyn_shmem + 128));
ALIAS_DECL = re.compile(
    r"^\s*void\*\s+(?P<name>\w+)\s*=\s*\(\(void\*\)\(\(char\*\)(?P<base>\w+) \+ (?P<off>\d+)\)\);"
)
FOR_HEAD = re.compile(
    r"^\s*for \((?:int|int64_t) (?P<var>\w+) = (?P<lo>-?\d+); (?P=var) < (?P<hi>-?\d+); "
    r"(?:\+\+(?P=var)|(?P=var)\+\+|(?P=var) \+= (?P<step>\d+))\) \{$"
)
# Calls that only read shared memory (operand loads and GEMMs); any other call that takes a
# shared pointer is treated as a write to an unknown range.
READ_ONLY_CALLS = re.compile(r"ldmatrix|\bgemm_|mma_sync|\bmfma|__builtin_amdgcn_mfma")
# Calls that write shared memory at their first argument, with the bytes per thread.
WRITE_CALLS = (
    (re.compile(r"ptx_stmatrix_x(\d)(_trans)?\("), lambda m: 16),
    (re.compile(r"cp_async_gs(?:_conditional)?<(\d+)>\("), lambda m: int(m.group(1))),
)


@dataclass
class Block:
    kind: str  # "for", "if", "else", "block" (bare braces), "other"
    open_line: int
    close_line: int = -1
    var: str | None = None
    lo: int = 0
    hi: int = 0

    @property
    def always_runs(self) -> bool:
        """A barrier inside this block is reached on every path through it."""
        if self.kind == "block":
            return True
        return self.kind == "for" and self.var is not None and self.hi > self.lo


@dataclass
class Access:
    region: str  # "dyn" (the dynamic buffer, byte offsets) or "static:<name>"; "*" = unknown
    lo: int | None  # byte range [lo, hi); None = unbounded (the whole region)
    hi: int | None

    def overlaps(self, other: "Access") -> bool:
        if "*" in (self.region, other.region):
            return True
        if self.region != other.region:
            return False
        if None in (self.lo, self.hi, other.lo, other.hi):
            return True
        return self.lo < other.hi and other.lo < self.hi


@dataclass
class Reduction:
    line: int
    text: str
    scratch: Access
    starts_with_barrier: bool  # its first exchange level goes through shared memory


@dataclass
class Hazard:
    reduction_line: int
    reduction: str
    scratch: Access
    write_line: int
    write: str
    written: Access

    def to_dict(self) -> dict:
        return dict(
            reduction_line=self.reduction_line,
            reduction=self.reduction[:160],
            scratch=[self.scratch.region, self.scratch.lo, self.scratch.hi],
            write_line=self.write_line,
            write=self.write[:200],
            written=[self.written.region, self.written.lo, self.written.hi],
        )


@dataclass
class Kernel:
    """One `__global__` function of the lowered source, split into lines with its blocks."""

    lines: list[str]
    first_line: int  # 1-based line number of lines[0] in the whole source
    threads: int
    warp: int
    dyn_name: str | None = None
    aliases: dict[str, int] = field(default_factory=dict)  # pointer name -> dyn byte offset
    statics: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (elem, count)
    # per line: the blocks enclosing it (outermost first), and the block it opens / closes
    enclosing: list[list[Block]] = field(default_factory=list)
    opens: dict[int, Block] = field(default_factory=dict)
    closes: dict[int, Block] = field(default_factory=dict)


def _split_kernels(source: str, warp: int) -> list[Kernel]:
    lines = source.splitlines()
    kernels = []
    i = 0
    while i < len(lines):
        if "__global__" not in lines[i]:
            i += 1
            continue
        start = i
        depth, seen_open = 0, False
        while i < len(lines):
            depth += lines[i].count("{") - lines[i].count("}")
            seen_open |= "{" in lines[i]
            i += 1
            if seen_open and depth == 0:
                break
        head = " ".join(lines[start : start + 3])
        bounds = LAUNCH_BOUNDS.search(head)
        kernels.append(
            Kernel(
                lines=lines[start:i],
                first_line=start + 1,
                threads=int(bounds.group(1)) if bounds else 1024,
                warp=warp,
            )
        )
    return kernels


def _parse_structure(k: Kernel) -> None:
    stack: list[Block] = []
    for n, line in enumerate(k.lines):
        s = line.strip()
        if m := DYN_DECL.search(s):
            k.dyn_name = m.group(1)
        if (m := ALIAS_DECL.match(line)) and m.group("base") == k.dyn_name:
            k.aliases[m.group("name")] = int(m.group("off"))
        if m := STATIC_DECL.match(line):
            elem = type_bytes(m.group("type")) or 1
            k.statics[m.group("name")] = (elem, int(m.group("n")))
        closes = s.startswith("}")
        if closes and stack:
            blk = stack.pop()
            blk.close_line = n
            k.closes[n] = blk
        k.enclosing.append(list(stack))
        if s.endswith("{") and n > 0:
            if m := FOR_HEAD.match(line):
                if m.group("step") in (None, "1"):
                    blk = Block(
                        "for", n, var=m.group("var"), lo=int(m.group("lo")), hi=int(m.group("hi"))
                    )
                else:
                    blk = Block("for", n)  # strided: trip count not tracked, ranges unknown
            elif s.startswith("for ") or s.startswith("while ") or s.startswith("do "):
                blk = Block("for", n)
            elif s.startswith("if ") or s.startswith("} else if"):
                blk = Block("if", n)
            elif s.startswith("} else") or s.startswith("else"):
                blk = Block("else", n)
            elif s == "{":
                blk = Block("block", n)
            else:
                blk = Block("other", n)
            k.opens[n] = blk
            stack.append(blk)


# --- index expressions -------------------------------------------------------------------

_CAST = re.compile(r"\((?:int|int64_t|uint|uint64_t|unsigned|long|longlong|int32_t|uint32_t)\)")
_INT_SUFFIX = re.compile(r"\b(\d+)(?:LL|ll|U|u|L|l)+\b")
_IDENT = re.compile(r"[A-Za-z_]\w*")


def _index_range(expr: str, loops: dict[str, tuple[int, int]], threads: int):
    """(min, max) of a C integer index expression over threadIdx.x and the loop counters in
    `loops`; None if it depends on anything else."""
    if any(tok in expr for tok in ("?", "&&", "||", "[", "blockIdx", "threadIdx.y", "threadIdx.z")):
        return None
    py = _CAST.sub("", expr).replace("threadIdx.x", "tx")
    py = _INT_SUFFIX.sub(r"\1", py).replace("/", "//")
    py = re.sub(r"\bmax\(", "_max(", re.sub(r"\bmin\(", "_min(", py))
    names = set(_IDENT.findall(py)) - {"_max", "_min"}
    space = {"tx": (0, threads), **loops}
    if not names <= set(space):
        return None
    used = sorted(names)
    env: dict = {"_max": np.maximum, "_min": np.minimum}
    for axis, name in enumerate(used):
        lo, hi = space[name]
        shape = [1] * len(used)
        shape[axis] = max(hi - lo, 1)
        env[name] = np.arange(lo, max(hi, lo + 1), dtype=np.int64).reshape(shape)
    try:
        value = np.asarray(eval(py, {"__builtins__": {}}, env))  # noqa: S307 (our own text)
    except Exception:
        return None
    return int(value.min()), int(value.max())


def _matching(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index just past the bracket that closes text[start] (== open_ch); -1 if none."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


# ((float*)base)[idx]   (((T*)base) + idx)   base[idx] (static arrays)   base+(idx) (bytes)
_TYPED_BASE = re.compile(r"\(\((?P<type>[\w ]+?)\*\)(?P<base>\w+)\)")


def _accesses(k: Kernel, text: str, loops, width_hint: int | None = None) -> list[Access]:
    """Every shared-memory access in `text`, as byte ranges."""
    out = []
    shared_names = set(k.aliases) | set(k.statics) | ({k.dyn_name} if k.dyn_name else set())
    for m in _TYPED_BASE.finditer(text):
        base = m.group("base")
        if base not in shared_names:
            continue
        elem = type_bytes(m.group("type"))
        rest = text[m.end() :]
        if rest.startswith("["):
            end = _matching(rest, 0, "[", "]")
            idx, width = rest[1 : end - 1], elem if width_hint is None else width_hint
        elif rest.lstrip().startswith("+"):
            # pointer arithmetic: the index runs to the closing parenthesis around it
            close = _matching(text, _open_paren_before(text, m.start()), "(", ")")
            idx = text[m.end() : close - 1].lstrip()[1:]
            vec = re.search(r"\*\((\w+)\*\)\s*\($", text[: _open_paren_before(text, m.start()) + 1])
            width = (type_bytes(vec.group(1)) if vec else None) or width_hint
        else:
            idx, width = "0", width_hint
        out.append(_range(k, base, elem, idx, width, loops))
    for name in k.statics:
        for m in re.finditer(rf"(?<![\w.>]){name}\[", text):
            end = _matching(text, m.end() - 1, "[", "]")
            elem = k.statics[name][0]
            out.append(_range(k, name, elem, text[m.end() : end - 1], elem, loops))
    if k.dyn_name:
        for m in re.finditer(rf"(?<![\w*)]){k.dyn_name}\s*\+\s*\(", text):
            end = _matching(text, m.end() - 1, "(", ")")
            out.append(_range(k, k.dyn_name, 1, text[m.end() : end - 1], width_hint, loops))
    return out


def _open_paren_before(text: str, pos: int) -> int:
    """Position of the '(' that opens the parenthesised expression containing text[pos]."""
    depth = 0
    for i in range(pos - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            if depth == 0:
                return i
            depth -= 1
    return 0


def _range(k: Kernel, base: str, elem, idx: str, width, loops) -> Access:
    if base in k.statics:
        region, offset = f"static:{base}", 0
    else:
        region, offset = "dyn", 0 if base == k.dyn_name else k.aliases[base]
    bounds = _index_range(idx, loops, k.threads) if elem else None
    if bounds is None or width is None:
        return Access(region, None, None)
    return Access(region, offset + bounds[0] * elem, offset + bounds[1] * elem + width)


def _loops_at(k: Kernel, n: int) -> dict[str, tuple[int, int]]:
    return {b.var: (b.lo, b.hi) for b in k.enclosing[n] if b.kind == "for" and b.var}


def _assignment_split(line: str) -> int:
    """Index of the assignment '=' at parenthesis depth 0, or -1."""
    depth = 0
    for i, ch in enumerate(line):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "=" and depth == 0:
            prev = line[i - 1] if i else ""
            nxt = line[i + 1] if i + 1 < len(line) else ""
            if nxt != "=" and prev not in "=!<>":
                return i
    return -1


def _writes(k: Kernel, n: int) -> list[Access]:
    """The shared-memory writes of line n (conservative for calls it does not know)."""
    line = k.lines[n]
    loops = _loops_at(k, n)
    eq = _assignment_split(line)
    if eq > 0:
        lhs = line[:eq]
        if lhs.rstrip().endswith(("+", "-", "*", "/", "|", "&", "^", "<<", ">>")):
            lhs = lhs.rstrip()[:-1]
        writes = _accesses(k, lhs, loops)
        rhs = line[eq + 1 :]
    else:
        writes, rhs = [], line
    if ALL_REDUCE.search(rhs):
        return writes  # its scratch write comes after its own barrier (see _first_hazard)
    # calls in the statement (the right-hand side, or a bare call)
    for pattern, width in WRITE_CALLS:
        if m := pattern.search(rhs):
            args = rhs[m.end() - 1 : _matching(rhs, m.end() - 1, "(", ")")]
            first = args[1 : _first_arg_end(args)]
            found = _accesses(k, first, loops, width_hint=width(m))
            writes += found or [Access("*", None, None)]
            return writes
    if (
        "(" in rhs
        and not READ_ONLY_CALLS.search(rhs)
        and re.search(r"\b\w+(?:::\w+)*(?:<[^;]*?>)?\(", rhs)
    ):
        # an unknown call that is handed a shared pointer (&shared[...] or a bare alias)
        for m in re.finditer(r"(\w+(?:::\w+)*)(?:<[^;]*?>)?\(", rhs):
            if m.group(1) in (
                "max",
                "min",
                "make_float2",
                "make_float4",
                "make_int4",
                "exp2f",
                "expf",
            ):
                continue
            args = rhs[m.end() - 1 : _matching(rhs, m.end() - 1, "(", ")")]
            if "(&(" in args and _accesses(k, args, loops):
                writes.append(Access("*", None, None))
                break
    return writes


def _first_arg_end(args: str) -> int:
    depth = 0
    for i, ch in enumerate(args):  # brackets only: `>>` in an index is not a template
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0 and ch == ")":
                return i
        elif ch == "," and depth == 1:
            return i
    return len(args)


def _reduction(k: Kernel, n: int) -> Reduction | None:
    """The shared-scratch AllReduce on line n, if any."""
    m = ALL_REDUCE.search(k.lines[n])
    if not m:
        return None
    targs = [a.strip() for a in m.group("args").split(",")]
    try:
        threads, scale = int(targs[1]), int(targs[2])
        thread_offset = int(targs[3]) if len(targs) > 3 and targs[3].isdigit() else 0
    except (IndexError, ValueError):
        threads, scale, thread_offset = k.threads, 1, 0
    call = m.group("call")
    comma = _first_arg_end("(" + call + ")")
    scratch_arg = call[comma:].lstrip(", ").strip() if comma <= len(call) else ""
    uses_shared = threads // 2 >= k.warp and threads != scale
    if not scratch_arg or not uses_shared:
        return None
    found = _accesses(k, scratch_arg, _loops_at(k, n), width_hint=0)
    if not found:
        return Reduction(n, k.lines[n].strip(), Access("*", None, None), True)
    start = found[0]
    elem = 4
    if tm := re.search(r"\(\(([\w ]+)\*\)", scratch_arg):
        elem = type_bytes(tm.group(1)) or 4
    count = k.threads + thread_offset
    if m.group("fn") == "run_batch":
        try:
            batch, stride = int(targs[4]), int(targs[5])
            count += (batch - 1) * stride
        except (IndexError, ValueError):
            return Reduction(n, k.lines[n].strip(), Access(start.region, None, None), True)
    if start.lo is None:
        return Reduction(n, k.lines[n].strip(), Access(start.region, None, None), True)
    lo = start.lo - thread_offset * elem
    return Reduction(n, k.lines[n].strip(), Access(start.region, lo, lo + count * elem), True)


def _starts_with_barrier(k: Kernel, n: int) -> bool:
    r = _reduction(k, n)
    return r is not None and r.starts_with_barrier


def _first_hazard(
    k: Kernel, red: Reduction, start: int, stop: int | None, ended: list[int] | None = None
) -> int | None:
    """Walk lines start.. (up to `stop`, or following loop back-edges and block exits) after
    `red`; return the line of the first overlapping shared write before a barrier. The
    barrier lines that end a path are appended to `ended`."""
    entered: list[Block] = []
    n = start
    while n < len(k.lines):
        if stop is not None and n == stop:
            return None
        if n in k.closes:
            blk = k.closes[n]
            if entered and entered[-1] is blk:
                entered.pop()
            elif stop is None and blk.kind == "for":
                # leaving a loop around the reduction: the next iteration runs its body again
                hit = _first_hazard(k, red, blk.open_line + 1, red.line, ended)
                if hit is not None:
                    return hit
        unconditional = all(b.always_runs for b in entered)
        line = k.lines[n]
        if BARRIER.search(line) and "AllReduce" not in line and unconditional:
            if ended is not None:
                ended.append(n)
            return None
        if _starts_with_barrier(k, n) and unconditional:
            return None
        if n != red.line and any(w.overlaps(red.scratch) for w in _writes(k, n)):
            return n
        if n in k.opens:
            entered.append(k.opens[n])
        n += 1
    return None


def _scratch_shared_with_writes(k: Kernel, red: Reduction) -> bool:
    """Whether any other statement of the kernel writes bytes of the reduction's scratch (if
    none does, the scratch has bytes of its own and needs no barrier after the reduction)."""
    return any(
        n != red.line and any(w.overlaps(red.scratch) for w in _writes(k, n))
        for n in range(len(k.lines))
    )


@dataclass
class ReductionReport:
    reductions: int  # cross-warp reductions through shared memory that were checked
    hazards: list[Hazard]
    # of those, the ones whose scratch bytes other statements also write (a barrier matters)
    shared_scratch: int = 0


def reduction_hazards(source: str, backend: str) -> ReductionReport:
    """Check every shared-scratch reduction of `source` ("cuda" or "hip" device code)."""
    warp = 64 if backend == "hip" else 32
    count, shared, hazards = 0, 0, []
    for k in _split_kernels(source, warp):
        _parse_structure(k)
        for n in range(len(k.lines)):
            red = _reduction(k, n)
            if red is None:
                continue
            count += 1
            shared += _scratch_shared_with_writes(k, red)
            hit = _first_hazard(k, red, n + 1, None)
            if hit is not None:
                hazards.append(
                    Hazard(
                        k.first_line + n,
                        red.text,
                        red.scratch,
                        k.first_line + hit,
                        k.lines[hit].strip(),
                        next(w for w in _writes(k, hit) if w.overlaps(red.scratch)),
                    )
                )
    return ReductionReport(count, hazards, shared)


def strip_barriers_after_reductions(source: str, backend: str) -> tuple[str, int]:
    """The mutation the check must catch: delete every block-wide barrier that ends a path
    after a shared-scratch reduction before it reaches a write, whoever put it there (the
    kernel's `T.sync_threads()` or TileLang's own sync planner), until each reduction's paths
    reach a write or end otherwise. Returns (source, barriers removed)."""
    warp = 64 if backend == "hip" else 32
    lines = source.splitlines()
    removed = 0
    while True:
        dropped = None
        for k in _split_kernels("\n".join(lines), warp):
            _parse_structure(k)
            for n in range(len(k.lines)):
                red = _reduction(k, n)
                if red is None:
                    continue
                ended: list[int] = []
                if _first_hazard(k, red, n + 1, None, ended) is None and ended:
                    dropped = k.first_line + ended[0] - 1
                    break
            if dropped is not None:
                break
        if dropped is None:
            return "\n".join(lines) + "\n", removed
        del lines[dropped]
        removed += 1


def shared_memory_bytes(source: str, dynamic_bytes: int) -> dict[str, int]:
    """Shared memory (LDS) per workgroup: the dynamic buffer TileLang sizes (its
    `dyn_shared_memory_buf` attribute) plus the static `__shared__` arrays in the source."""
    static = 0
    for line in source.splitlines():
        if m := STATIC_DECL.match(line):
            static += (type_bytes(m.group("type")) or 1) * int(m.group("n"))
    return dict(dynamic=dynamic_bytes, static=static, total=dynamic_bytes + static)
