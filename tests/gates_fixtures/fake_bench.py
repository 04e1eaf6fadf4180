"""A stand-in for ``python -m sglang.bench_serving`` in the gate tests: asks the fake server
its KV dtype, then prints a "Serving Benchmark Result" block and appends one JSON line, in
bench_serving's format, with made-up numbers (FP8 ahead at high concurrency, TPOT +2%)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", required=True)
    p.add_argument("--max-concurrency", type=int, required=True)
    p.add_argument("--num-prompts", type=int, required=True)
    p.add_argument("--output-file", required=True)
    args, _ = p.parse_known_args()
    url = f"http://{args.host}:{args.port}/get_server_info"
    with urllib.request.urlopen(url, timeout=5) as r:
        dtype = json.load(r)["kv_cache_dtype"]
    c = args.max_concurrency
    fp8 = dtype.startswith("fp8")
    tput = min(c, 64) * 100.0 * (1.3 if fp8 and c >= 128 else 1.0)
    tpot = 20.0 * (1.02 if fp8 else 1.0)
    res = {
        "backend": "sglang",
        "dataset_name": "random-ids",
        "max_concurrency": c,
        "completed": args.num_prompts,
        "duration": 10.0,
        "output_throughput": tput,
        "median_tpot_ms": tpot,
        "median_ttft_ms": 100.0,
        "p99_ttft_ms": 300.0,
    }
    print("\n{:=^50}".format(" Serving Benchmark Result "))
    print("{:<40} {:<10}".format("Successful requests:", args.num_prompts))
    print("{:<40} {:<10.2f}".format("Output token throughput (tok/s):", tput))
    print("{:<40} {:<10.2f}".format("Median TPOT (ms):", tpot))
    print("=" * 50)
    with open(args.output_file, "a") as f:
        f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
