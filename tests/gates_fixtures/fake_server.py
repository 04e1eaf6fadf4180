"""A stand-in for ``python -m sglang.launch_server`` in the gate tests: a real process speaking
HTTP on 127.0.0.1 in the shapes the gates use (/health, /get_server_info, /generate,
/v1/completions), with failure modes. Stdlib only.

Like sglang it forks a helper process into its own process group (sglang's scheduler and
detokenizer), so the tests can check that teardown kills the whole group, not just the leader.

Modes: healthy | die (exits during start-up, leaving its helper orphaned) | never-healthy
(/health answers 503 forever) | http500 (healthy, but generation returns HTTP 500);
--die-for-dtype D dies only when started with --kv-cache-dtype D (a crash in a later phase).
Answers come from --answers FILE: {"<kv dtype>" or "*": {"<question>": "<completion>"}}.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KV_TOKENS = {"bfloat16": 1_000_000, "bf16": 1_000_000, "fp8_e4m3": 1_810_000}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="healthy")
    p.add_argument("--answers", default="")
    p.add_argument("--startup-delay", type=float, default=0.2)
    p.add_argument("--ignore-sigterm", action="store_true")
    p.add_argument("--report-dtype", default="", help="lie about the KV dtype in server info")
    p.add_argument("--die-for-dtype", default="", help="mode 'die' only for this KV dtype")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--kv-cache-dtype", default="auto")
    p.add_argument("--model-path", default="fake")
    args, unknown = p.parse_known_args()
    print(f"fake sglang: argv extra={unknown}", flush=True)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    helper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        start_new_session=False,  # same process group, as sglang's subprocesses
    )
    print(f"fake sglang: pid {__import__('os').getpid()} helper pid {helper.pid}", flush=True)
    time.sleep(args.startup_delay)
    if args.mode == "die" or (args.die_for_dtype and args.die_for_dtype == args.kv_cache_dtype):
        print("RuntimeError: fake start-up failure: HIP out of memory", flush=True)
        return 1
    answers = json.load(open(args.answers)) if args.answers else {}
    dtype = args.kv_cache_dtype
    tokens = KV_TOKENS.get(dtype, 500_000)
    print(f"KV Cache is allocated. #tokens: {tokens}, KV size: {tokens * 78324 / 2**30:.2f} GB")
    print("KV Cache is allocated. #tokens: 4096, KV size: 0.01 GB  (draft pool)", flush=True)

    def complete(prompt: str) -> str:
        question = prompt.rsplit("Question: ", 1)[-1].rsplit("\nAnswer:", 1)[0]
        for key in (dtype, "*"):
            if question in answers.get(key, {}):
                return answers[key][question]
        return " I cannot solve this one."

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:  # keep the log short
            pass

        def _send(self, code: int, body: object) -> None:
            data = (json.dumps(body) if not isinstance(body, str) else body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(503 if args.mode == "never-healthy" else 200, {})
            elif self.path == "/get_server_info":
                info = {"kv_cache_dtype": args.report_dtype or dtype, "model_path": args.model_path}
                self._send(200, info)
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw) if raw else {}
            if args.mode == "http500":
                self._send(500, "Internal Server Error: fake scheduler crashed")
                return
            if self.path == "/flush_cache":
                print("fake sglang: cache flushed", flush=True)
                self._send(200, "Cache flushed.")
            elif self.path == "/generate":
                text = complete(body["text"])
                self._send(200, {"text": text, "meta_info": {"completion_tokens": len(text)}})
            elif self.path == "/v1/completions":
                text = complete(body["prompt"])
                self._send(
                    200,
                    {
                        "choices": [{"index": 0, "text": text}],
                        "usage": {"completion_tokens": len(text)},
                    },
                )
            else:
                self._send(404, {"error": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"fake sglang: serving on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
