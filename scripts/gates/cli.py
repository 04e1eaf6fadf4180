"""Command line: ``python -m scripts.gates COMMAND [--config FILE] [--set section.key=value]``.

Exit codes: 0 gates passed, 1 a gate failed, 2 bad config/data, 3 server/bench/HTTP failure,
130 interrupted. Every non-zero exit leaves no server process behind.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from scripts.gates import gsm8k
from scripts.gates.config import load_config
from scripts.gates.errors import GateError, Interrupted
from scripts.gates.runner import run_gates
from scripts.gates.server import Server, build_command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts.gates",
        description="FP8-vs-BF16 KV regression gates (GSM8K accuracy, serving throughput).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config (default: config/gates.toml)")
    common.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (TOML syntax), e.g. --set server.tp=4; repeatable",
    )
    common.add_argument("--report-dir", help="where reports go (default: report.dir)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data-path", help="local GSM8K test.jsonl (offline nodes)")
    data.add_argument(
        "--allow-unverified-data",
        action="store_true",
        help="accept a --data-path whose sha256 differs from dataset.sha256 (e.g. a subset)",
    )
    data.add_argument("--num-questions", type=int, help="override accuracy.num_questions")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("accuracy", parents=[common, data], help="GSM8K gate (both runs)")
    sub.add_parser("throughput", parents=[common], help="bench_serving gate (both runs)")
    sub.add_parser("all", parents=[common, data], help="both gates, one server start per run")
    serve = sub.add_parser("serve", parents=[common], help="start one server and hold it")
    serve.add_argument("--kv-dtype", help="default: runs.candidate_kv_dtype")
    serve.add_argument("--log", help="log file (default: REPORT_DIR/serve-DTYPE.log)")
    sub.add_parser("print-commands", parents=[common], help="show both launch commands")
    ev = sub.add_parser(
        "eval-gsm8k",
        parents=[common, data],
        help="GSM8K on an already running server (no gate)",
    )
    ev.add_argument("--url", required=True, help="e.g. http://127.0.0.1:30000")
    return p


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.set)
    if getattr(args, "allow_unverified_data", False):
        extra.append("dataset.allow_unverified=true")
    if getattr(args, "num_questions", None) is not None:
        extra.append(f"accuracy.num_questions={args.num_questions}")
    return extra


def _serve(cfg, args) -> int:  # type: ignore[no-untyped-def]
    dtype = args.kv_dtype or cfg.runs.candidate_kv_dtype
    log = args.log or str(
        cfg.resolve_path(args.report_dir or cfg.report.dir) / f"serve-{dtype}.log"
    )
    with Server(cfg, dtype, cfg.resolve_path(log)) as srv:
        assert srv.info is not None
        print(
            json.dumps(
                {
                    "url": srv.url,
                    "pid": srv.info.pid,
                    "kv_tokens": srv.info.kv_tokens,
                    "log": log,
                }
            ),
            flush=True,
        )
        print("[serve] healthy; Ctrl-C to stop", file=sys.stderr, flush=True)
        while True:
            srv.check_alive()
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config, _overrides(args))
        if args.command == "print-commands":
            for dtype in (cfg.runs.baseline_kv_dtype, cfg.runs.candidate_kv_dtype):
                env = " ".join(f"{k}={shlex.quote(v)}" for k, v in cfg.server.env.items())
                cmd = shlex.join(build_command(cfg, dtype))
                print(f"{env} {cmd}".strip())
            return 0
        if args.command == "serve":
            return _serve(cfg, args)
        if args.command == "eval-gsm8k":
            data = gsm8k.load_test_split(cfg, args.data_path)
            res = gsm8k.evaluate(cfg, args.url.rstrip("/"), data, "eval")
            print(json.dumps(res, indent=2))
            return 0
        which = {"accuracy": ("accuracy",), "throughput": ("throughput",)}.get(
            args.command, ("accuracy", "throughput")
        )
        return run_gates(
            cfg,
            which,
            data_path=getattr(args, "data_path", None),
            report_dir=args.report_dir,
        )
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); servers stopped", file=sys.stderr)
        return Interrupted.exit_code
    except GateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
