"""GSM8K few-shot harness (our own): data with checksum + cache, prompts, parallel greedy eval.

Few-shot exemplars: by default the first five rows of the official *train* split, shipped in
``scripts/gates/data/gsm8k_train_first5.jsonl`` (so no train download and no test leakage);
``accuracy.fewshot_path`` may point at a full train.jsonl to use its first k rows instead.
Questions: the first ``num_questions`` rows of the official test split, in file order.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from scripts.gates import answers
from scripts.gates.client import generate
from scripts.gates.config import GatesConfig
from scripts.gates.errors import DataError, RequestFailed
from scripts.gates.progress import Progress

BUILTIN_FEWSHOT = Path(__file__).parent / "data" / "gsm8k_train_first5.jsonl"


@dataclass
class Dataset:
    rows: list[dict[str, Any]]
    source: str
    sha256: str
    verified: bool
    path: Path | None = None  # the local file (sglang's own scorer reads it too)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_jsonl(data: bytes, source: str) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{n}: not JSON ({exc.msg}); expected GSM8K jsonl") from exc
        if not isinstance(row, dict) or not {"question", "answer"} <= row.keys():
            raise DataError(f"{source}:{n}: needs 'question' and 'answer' fields (GSM8K jsonl)")
        try:
            row["gold"] = answers.gold_answer(row["answer"])
        except ValueError as exc:
            raise DataError(f"{source}:{n}: {exc}") from exc
        rows.append(row)
    if not rows:
        raise DataError(f"{source} holds no GSM8K rows")
    return rows


def _download(url: str, dest: Path, expected: str) -> bytes:
    try:
        r = requests.get(url, timeout=60)
        r.raise_for_status()
    except requests.RequestException as exc:
        raise DataError(
            f"cannot download GSM8K from {url}: {exc}. On an offline node copy the official "
            "test split there and pass GATES_DATA=/path/to/test.jsonl (script: --data-path)"
        ) from exc
    data = r.content
    if expected and _sha256(data) != expected:
        raise DataError(
            f"download from {url} has sha256 {_sha256(data)}, expected {expected} "
            "(dataset.sha256); refusing to use it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)  # atomic: a killed download never leaves a half file in the cache
    return data


def load_test_split(cfg: GatesConfig, data_path: str | None = None) -> Dataset:
    d = cfg.dataset
    path = data_path or d.data_path
    if path:
        p = cfg.resolve_path(path)
        if not p.is_file():
            raise DataError(f"GSM8K file {p} does not exist: fix GATES_DATA= (script: --data-path)")
        data = p.read_bytes()
        sha = _sha256(data)
        verified = bool(d.sha256) and sha == d.sha256
        if d.sha256 and not verified and not d.allow_unverified:
            raise DataError(
                f"{p} has sha256 {sha}, not the official test split's {d.sha256}; "
                "pass --allow-unverified-data to use another copy or a subset on purpose"
            )
        return Dataset(parse_jsonl(data, str(p)), str(p), sha, verified, p)
    if not d.url:
        raise DataError("no GSM8K source: set dataset.url or pass --data-path")
    cache = cfg.resolve_path(d.cache_dir) / "test.jsonl"
    if cache.is_file():
        data = cache.read_bytes()
        if not d.sha256 or _sha256(data) == d.sha256:
            return Dataset(
                parse_jsonl(data, str(cache)), str(cache), _sha256(data), bool(d.sha256), cache
            )
        print(f"[gsm8k] cached {cache} fails its checksum; downloading again")
    print(f"[gsm8k] downloading {d.url}")
    data = _download(d.url, cache, d.sha256)
    return Dataset(parse_jsonl(data, d.url), d.url, _sha256(data), bool(d.sha256), cache)


def load_fewshot(cfg: GatesConfig) -> list[dict[str, Any]]:
    k = cfg.accuracy.num_shots
    path = cfg.resolve_path(cfg.accuracy.fewshot_path) if cfg.accuracy.fewshot_path else None
    src = path or BUILTIN_FEWSHOT
    if not src.is_file():
        raise DataError(f"accuracy.fewshot_path {src} does not exist")
    rows = parse_jsonl(src.read_bytes(), str(src))
    if k > len(rows):
        raise DataError(
            f"accuracy.num_shots = {k} but {src} has only {len(rows)} exemplars; "
            "point accuracy.fewshot_path at the GSM8K train.jsonl for more"
        )
    return rows[:k]


def build_prompt(shots: list[dict[str, Any]], question: str) -> str:
    parts = [f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots]
    return "".join(parts) + f"Question: {question}\nAnswer:"


def score(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    return {
        "num_questions": n,
        "accuracy_flexible": sum(r["correct_flexible"] for r in records) / n,
        "accuracy_strict": sum(r["correct_strict"] for r in records) / n,
        "invalid_flexible": sum(r["pred_flexible"] is None for r in records) / n,
        "invalid_strict": sum(r["pred_strict"] is None for r in records) / n,
    }


def evaluate(
    cfg: GatesConfig,
    base_url: str,
    dataset: Dataset,
    label: str,
    out_path: Path | None = None,
) -> dict[str, Any]:
    """Ask every question (greedy, ``parallel`` in flight); fail fast on the first bad request."""
    a = cfg.accuracy
    shots = load_fewshot(cfg)
    rows = dataset.rows[: a.num_questions]
    if len(rows) < a.num_questions:
        print(f"[gsm8k] only {len(rows)} questions available (accuracy.num_questions ask more)")
    records: list[dict[str, Any] | None] = [None] * len(rows)
    progress = Progress(f"gsm8k {label}", len(rows))
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=a.parallel))

    def ask(i: int) -> None:
        row = rows[i]
        t0 = time.monotonic()
        try:
            text, ntok = generate(
                base_url,
                build_prompt(shots, row["question"]),
                api=a.api,
                max_new_tokens=a.max_new_tokens,
                stop=a.stop,
                timeout_s=a.request_timeout_s,
                session=session,
            )
        except RequestFailed as exc:
            raise RequestFailed(f"GSM8K question #{i} ({label}): {exc}") from exc
        strict, flexible = answers.extract_strict(text), answers.extract_flexible(text)
        records[i] = {
            "index": i,
            "gold": str(row["gold"]),
            "pred_strict": None if strict is None else str(strict),
            "pred_flexible": None if flexible is None else str(flexible),
            "correct_strict": answers.same(strict, row["gold"]),
            "correct_flexible": answers.same(flexible, row["gold"]),
            "completion_tokens": ntok,
            "latency_s": round(time.monotonic() - t0, 3),
            "completion": text,
        }
        progress.update()

    t0 = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=a.parallel)
    ok = False
    try:
        futures = [pool.submit(ask, i) for i in range(len(rows))]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in done:
            if f.exception() is not None:
                failed = sum(1 for g in futures if g.done() and g.exception() is not None)
                raise RequestFailed(
                    f"{f.exception()} ({failed} request(s) failed; remaining questions cancelled)"
                )
        ok = True
    finally:
        # On failure or Ctrl-C do not wait for in-flight requests: the caller tears the server
        # down next, which ends them at once.
        pool.shutdown(wait=ok, cancel_futures=True)
        progress.close()
        if ok:
            session.close()
    elapsed = time.monotonic() - t0
    done_records = [r for r in records if r is not None]
    result = score(done_records)
    tokens = sum(max(r["completion_tokens"], 0) for r in done_records)
    result.update(
        label=label,
        wall_s=round(elapsed, 2),
        output_tokens=tokens,
        output_tok_per_s=round(tokens / elapsed, 2) if elapsed > 0 else None,
    )
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with out_path.open("w") as f:
            for r in done_records:
                f.write(json.dumps(r) + "\n")
        result["details"] = str(out_path)
    return result
