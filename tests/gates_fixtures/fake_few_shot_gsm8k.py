"""A stand-in for ``python -m sglang.test.few_shot_gsm8k``: the same arguments and the same
printed summary, scoring the fake server's answers (last number of each completion vs the
gold after '####') over the first --num-questions rows of --data-path. Stdlib only."""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request


def main() -> int:
    p = argparse.ArgumentParser()
    for flag in ("--num-shots", "--num-questions", "--max-new-tokens", "--parallel", "--port"):
        p.add_argument(flag, type=int, required=True)
    p.add_argument("--data-path", required=True)
    p.add_argument("--host", required=True)
    args = p.parse_args()
    rows = [json.loads(line) for line in open(args.data_path) if line.strip()]
    rows = rows[: args.num_questions]
    correct = invalid = 0
    for row in rows:
        body = json.dumps({"text": f"Question: {row['question']}\nAnswer:"}).encode()
        req = urllib.request.Request(
            f"{args.host}:{args.port}/generate", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            text = json.load(r)["text"]
        numbers = re.findall(r"\d+", text.replace(",", ""))
        gold = row["answer"].split("####")[-1].strip().replace(",", "")
        if not numbers:
            invalid += 1
        elif numbers[-1] == gold.lstrip("-"):
            correct += 1
    print(f"Accuracy: {correct / len(rows):.3f}")
    print(f"Invalid: {invalid / len(rows):.3f}")
    print("Latency: 1.000 s")
    print("Output throughput: 100.000 token/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
