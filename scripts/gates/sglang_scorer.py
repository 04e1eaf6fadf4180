"""sglang's own few-shot GSM8K scorer (``python -m sglang.test.few_shot_gsm8k``), run against
the same server and the same local data as our harness, so the report shows both numbers:
the 0.93 floor was set with this scorer. Its prompts differ from ours (it takes its few-shot
examples from the first rows of the test file), so the two numbers need not agree exactly."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from scripts.gates.bench import run_logged
from scripts.gates.config import GatesConfig
from scripts.gates.errors import BenchError

_VALUE = re.compile(r"^(Accuracy|Invalid|Latency|Output throughput):\s*([0-9.]+)", re.M)


def build_command(cfg: GatesConfig, base_url: str, data_file: Path) -> list[str]:
    a = cfg.accuracy
    host, port = base_url.rsplit(":", 1)
    return cfg.expand(a.sglang_scorer) + [
        "--num-questions", str(a.num_questions),
        "--num-shots", str(a.num_shots),
        "--max-new-tokens", str(a.max_new_tokens),
        "--parallel", str(a.parallel),
        "--data-path", str(data_file),
        "--host", host,
        "--port", port,
    ]  # fmt: skip


def parse(text: str) -> dict[str, float]:
    found = {m.group(1).lower().replace(" ", "_"): float(m.group(2)) for m in _VALUE.finditer(text)}
    if "accuracy" not in found:
        raise BenchError("sglang's few_shot_gsm8k printed no 'Accuracy:' line")
    return found


def run(cfg: GatesConfig, base_url: str, data_file: Path, log: Path) -> dict[str, Any]:
    cmd = build_command(cfg, base_url, data_file)
    t0 = time.monotonic()
    text = run_logged(
        cmd,
        log,
        cfg.accuracy.sglang_scorer_timeout_s,
        what="sglang's GSM8K scorer",
        timeout_hint="timed out",
        config_key="accuracy.sglang_scorer",
        tail_lines=15,
    )
    return {**parse(text), "log": str(log), "wall_s": round(time.monotonic() - t0, 2)}
