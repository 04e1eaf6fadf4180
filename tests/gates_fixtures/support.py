"""Helpers shared by tests/test_gates_*.py (imported after putting this folder on sys.path)."""

from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent
REPO_ROOT = FIXTURES.parent.parent
if str(REPO_ROOT) not in sys.path:  # `scripts.gates` imports from the repo root
    sys.path.insert(0, str(REPO_ROOT))

FAKE_SERVER = FIXTURES / "fake_server.py"
FAKE_BENCH = FIXTURES / "fake_bench.py"
FAKE_SCORER = FIXTURES / "fake_few_shot_gsm8k.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp: Path, mode: str = "healthy", extra_launch: list[str] | None = None,
                 **sections: dict[str, object]) -> Path:  # fmt: skip
    """A gates.toml that launches the fake server on a free 127.0.0.1 port with short timeouts."""
    launch = ["{python}", str(FAKE_SERVER), "--mode", mode, *(extra_launch or [])]
    base: dict[str, dict[str, object]] = {
        "server": {
            "launch": launch,
            "model_path": "fake-model",
            "port": free_port(),
            "tp": 1,
            "extra_args": [],
            "env": {},
            "startup_timeout_s": 15.0,
            "health_poll_s": 0.1,
            "shutdown_timeout_s": 5.0,
            "log_tail_lines": 10,
        },
        "throughput": {"bench": ["{python}", str(FAKE_BENCH)]},
        "accuracy": {"sglang_scorer": ["{python}", str(FAKE_SCORER)]},
        # No GPU, checkpoint or patched sglang here: the fake server stands in for all three.
        "preflight": {"require_gpu": False, "require_model_dir": False, "require_module": ""},
        "report": {"dir": str(tmp / "reports")},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
    path = tmp / "gates.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def pids_in_log(log: Path) -> tuple[int, int]:
    """(server pid, helper pid) as the fake server logged them."""
    m = re.search(r"pid (\d+) helper pid (\d+)", log.read_text())
    assert m, f"fake server did not log its pids:\n{log.read_text()}"
    return int(m.group(1)), int(m.group(2))


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (read from /proc, independent of the gates)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_gone(*pids: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]
