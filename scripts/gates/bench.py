"""Drive ``python -m sglang.bench_serving`` and parse what it writes.

bench_serving appends one JSON object per run to ``--output-file`` (we give each run a fresh
file) and prints a "Serving Benchmark Result" block. The JSON line is the source of truth; the
printed block is parsed too, as a cross-check and as a fallback if the JSON line is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from scripts.gates.config import GatesConfig
from scripts.gates.errors import BenchError
from scripts.gates.server import kill_group

# Printed label -> JSON key, for the metrics the gates and reports use.
STDOUT_KEYS = {
    "Max request concurrency": "max_concurrency",
    "Successful requests": "completed",
    "Benchmark duration (s)": "duration",
    "Total input tokens": "total_input_tokens",
    "Total generated tokens": "total_output_tokens",
    "Request throughput (req/s)": "request_throughput",
    "Input token throughput (tok/s)": "input_throughput",
    "Output token throughput (tok/s)": "output_throughput",
    "Peak output token throughput (tok/s)": "max_output_tokens_per_s",
    "Total token throughput (tok/s)": "total_throughput",
    "Concurrency": "concurrency",
    "Mean E2E Latency (ms)": "mean_e2e_latency_ms",
    "Median E2E Latency (ms)": "median_e2e_latency_ms",
    "Mean TTFT (ms)": "mean_ttft_ms",
    "Median TTFT (ms)": "median_ttft_ms",
    "P99 TTFT (ms)": "p99_ttft_ms",
    "Mean TPOT (ms)": "mean_tpot_ms",
    "Median TPOT (ms)": "median_tpot_ms",
    "P99 TPOT (ms)": "p99_tpot_ms",
    "Mean ITL (ms)": "mean_itl_ms",
    "Median ITL (ms)": "median_itl_ms",
    "P95 ITL (ms)": "p95_itl_ms",
    "P99 ITL (ms)": "p99_itl_ms",
    "Max ITL (ms)": "max_itl_ms",
}
REQUIRED = ("completed", "output_throughput", "median_tpot_ms")
_LINE = re.compile(r"^(?P<label>[^:]+):\s+(?P<value>\S+)\s*$")


def parse_stdout(text: str) -> dict[str, Any]:
    """Metrics from the last "Serving Benchmark Result" block of bench_serving's stdout."""
    start = text.rfind("Serving Benchmark Result")
    if start < 0:
        return {}
    out: dict[str, Any] = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith("=" * 10):
            break
        m = _LINE.match(line.strip())
        if not m or m.group("label") not in STDOUT_KEYS:
            continue
        raw = m.group("value")
        try:
            value: Any = float(raw)
        except ValueError:
            value = raw  # e.g. "not set" for concurrency
        out[STDOUT_KEYS[m.group("label")]] = value
    return out


def parse_jsonl(path: Path) -> dict[str, Any]:
    """The last JSON object bench_serving appended to ``path``."""
    if not path.is_file():
        return {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        return {}
    try:
        obj = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: last line is not JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise BenchError(f"{path}: last line is not a JSON object")
    return obj


def merge_results(jsonl: dict[str, Any], stdout: dict[str, Any], where: str) -> dict[str, Any]:
    """JSON values win; stdout fills gaps. Missing gate metrics are an error."""
    merged = {**stdout, **{k: v for k, v in jsonl.items() if v is not None}}
    merged["source"] = "jsonl" if jsonl else "stdout"
    missing = [k for k in REQUIRED if not isinstance(merged.get(k), (int, float))]
    if missing:
        raise BenchError(
            f"bench_serving output for {where} lacks {', '.join(missing)}; "
            "see its log (did every request fail?)"
        )
    return merged


def num_prompts(cfg: GatesConfig, concurrency: int) -> int:
    t = cfg.throughput
    return max(t.min_prompts, t.prompts_per_slot * concurrency)


def build_bench_command(
    cfg: GatesConfig, base_url: str, concurrency: int, output_file: Path, seed: int | None = None
) -> list[str]:
    """``seed`` defaults to throughput.seed; the runner gives repeat r the seed ``seed + r`` so
    that, with the radix cache on, a repeat does not reuse the previous repeat's prompts."""
    t, s = cfg.throughput, cfg.server
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    return cfg.expand(t.bench) + [
        "--backend", "sglang",
        "--host", host,
        "--port", port,
        "--model", s.model_path,  # tokenizer from the local checkpoint: no hub download
        "--dataset-name", t.dataset_name,
        "--random-input-len", str(t.input_len),
        "--random-output-len", str(t.output_len),
        "--random-range-ratio", str(t.range_ratio),
        "--num-prompts", str(num_prompts(cfg, concurrency)),
        "--max-concurrency", str(concurrency),
        "--seed", str(t.seed if seed is None else seed),
        "--warmup-requests", str(t.warmup_requests),
        "--output-file", str(output_file),
    ] + list(t.extra_args)  # fmt: skip


def run_logged(
    cmd: list[str],
    log: Path,
    timeout_s: float,
    *,
    what: str,
    timeout_hint: str,
    config_key: str,
    tail_lines: int,
) -> str:
    """Run a client command in its own process group with its output in `log`; return the log
    text. Any failure (cannot start, timeout, non-zero exit) is a BenchError naming the log;
    on timeout or interrupt the whole group is killed, so no client outlives the gate."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        try:
            proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise BenchError(f"cannot run {cmd[0]!r}: {exc}; check {config_key}") from exc
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, proc, 10.0)
            raise BenchError(f"{what} {timeout_hint}; log: {log}") from None
        except BaseException:
            kill_group(proc.pid, proc, 10.0)  # Ctrl-C / SIGTERM: leave no client behind
            raise
    text = log.read_text(errors="replace")
    if rc != 0:
        tail = "\n".join(text.splitlines()[-tail_lines:])
        raise BenchError(f"{what} exited with code {rc}; log {log}:\n{tail}")
    return text


def run_bench(
    cfg: GatesConfig,
    base_url: str,
    concurrency: int,
    out_dir: Path,
    tag: str,
    seed: int | None = None,
) -> dict[str, Any]:
    """One bench_serving run; returns the merged metrics (plus ``log`` and ``wall_s``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / f"{tag}.jsonl"
    log = out_dir / f"{tag}.log"
    jsonl.unlink(missing_ok=True)
    cmd = build_bench_command(cfg, base_url, concurrency, jsonl, seed)
    t0 = time.monotonic()
    text = run_logged(
        cmd,
        log,
        cfg.throughput.bench_timeout_s,
        what=f"bench_serving ({tag})",
        timeout_hint="ran past throughput.bench_timeout_s",
        config_key="throughput.bench",
        tail_lines=20,
    )
    result = merge_results(parse_jsonl(jsonl), parse_stdout(text), f"{tag} ({log})")
    expected = num_prompts(cfg, concurrency)
    if int(result["completed"]) < expected:
        raise BenchError(
            f"bench_serving ({tag}): only {int(result['completed'])} of {expected} requests "
            f"succeeded; see {log} and the server log"
        )
    result = {k: v for k, v in result.items() if k not in ("server_info",)}
    used_seed = int(cmd[cmd.index("--seed") + 1])
    result.update(log=str(log), wall_s=round(time.monotonic() - t0, 2), seed=used_seed)
    return result
