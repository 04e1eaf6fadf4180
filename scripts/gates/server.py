"""Server lifecycle: launch in its own process group, wait for /health, always tear down.

sglang forks scheduler/detokenizer/TP workers; they share the launcher's process group, so
signalling the group (not the pid) is what leaves nothing behind on the node.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from scripts.gates.config import GatesConfig
from scripts.gates.errors import Interrupted, ServerError

KV_LINE = re.compile(r"KV Cache is allocated\. #tokens: (\d+)")

# Process groups still alive; an atexit hook kills them if a caller forgot the context manager.
_LIVE_GROUPS: set[int] = set()


def build_command(cfg: GatesConfig, kv_dtype: str, launch: list[str] | None = None) -> list[str]:
    """The launch command; the baseline and candidate runs differ only in ``--kv-cache-dtype``
    (the upstream run, if any, also in its ``launch`` prefix)."""
    s = cfg.server
    cmd = cfg.expand(launch or s.launch) + [
        "--model-path", s.model_path,
        "--tp-size", str(s.tp),
        "--host", s.host,
        "--port", str(s.port),
        "--attention-backend", s.attention_backend,
        "--nsa-prefill-backend", s.nsa_prefill_backend,
        "--nsa-decode-backend", s.nsa_decode_backend,
        "--mem-fraction-static", str(s.mem_fraction_static),
        "--kv-cache-dtype", kv_dtype,
    ]  # fmt: skip
    if s.trust_remote_code:
        cmd.append("--trust-remote-code")
    if s.disable_radix_cache:
        cmd.append("--disable-radix-cache")
    if s.mtp:
        cmd += list(s.mtp_args)
    return cmd + list(s.extra_args)


def parse_kv_tokens(log_text: str) -> int | None:
    """KV capacity from the first "KV Cache is allocated. #tokens: N" line (target model's pool;
    a speculative draft pool, if any, logs after it)."""
    m = KV_LINE.search(log_text)
    return int(m.group(1)) if m else None


def tail(path: Path, lines: int) -> str:
    try:
        with path.open(errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log)"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids in process group ``pgid``. Zombies are ignored: an init that does
    not reap (common in containers) would otherwise keep a dead group "alive" forever."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # not Linux: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(d.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def kill_group(pgid: int, proc: subprocess.Popen[Any] | None, grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s``, then SIGKILL; reap the leader."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()  # reap the leader so its zombie does not keep the group "alive"
            if not _group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    _LIVE_GROUPS.discard(pgid)


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_LIVE_GROUPS):
        kill_group(pgid, None, 5.0)


@dataclass
class ServerInfo:
    kv_dtype: str
    url: str
    pid: int
    log_path: Path
    kv_tokens: int | None
    startup_s: float
    reported: dict[str, Any] | None


class Server:
    """Context manager: ``with Server(cfg, "fp8_e4m3", log) as srv: ...``.

    On entry it launches, waits for health and raises ``ServerError`` (after teardown) if the
    process exits or never gets healthy. On exit — normal, exception, Ctrl-C or SIGTERM — the
    whole process group is killed. SIGTERM is turned into ``Interrupted`` so ``finally`` runs.
    """

    def __init__(
        self,
        cfg: GatesConfig,
        kv_dtype: str,
        log_path: Path,
        quiet: bool = False,
        launch: list[str] | None = None,
        stop_cmd: list[str] | None = None,
    ):
        self.cfg = cfg
        self.kv_dtype = kv_dtype
        self.launch = launch
        self.stop_cmd = stop_cmd or []
        self.log_path = log_path
        self.quiet = quiet
        self.url = f"http://{cfg.server.host}:{cfg.server.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: ServerInfo | None = None
        self._old_handlers: dict[int, Any] = {}

    # -- signals -------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(f"received {signal.Signals(signum).name}; server stopped")

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    # -- lifecycle -----------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def start(self) -> ServerInfo:
        self._check_port_free()
        cmd = build_command(self.cfg, self.kv_dtype, self.launch)
        env = dict(os.environ)
        env.update(self.cfg.server.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._say(f"[server {self.kv_dtype}] starting; log: {self.log_path}")
        with self.log_path.open("wb") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # own session + process group; Ctrl-C stays with us
                )
            except OSError as exc:
                raise ServerError(
                    f"cannot execute server command {cmd[0]!r}: {exc}; check server.launch"
                ) from exc
        _LIVE_GROUPS.add(self.proc.pid)
        t0 = time.monotonic()
        self._wait_healthy(t0)
        startup = time.monotonic() - t0
        reported = self._server_info()
        log_text = self.log_path.read_text(errors="replace")
        self.info = ServerInfo(
            kv_dtype=self.kv_dtype,
            url=self.url,
            pid=self.proc.pid,
            log_path=self.log_path,
            kv_tokens=parse_kv_tokens(log_text),
            startup_s=startup,
            reported=reported,
        )
        self._say(
            f"[server {self.kv_dtype}] healthy after {startup:.1f} s; "
            f"KV tokens: {self.info.kv_tokens if self.info.kv_tokens is not None else 'not logged'}"
        )
        return self.info

    def _check_port_free(self) -> None:
        try:
            requests.get(self.url + "/health", timeout=2)
        except requests.RequestException:
            return
        raise ServerError(
            f"something already answers on {self.url}; stop it or set server.port to a free port "
            "(the gates must own the server they measure)"
        )

    def _fail(self, what: str) -> ServerError:
        lines = self.cfg.server.log_tail_lines
        return ServerError(
            f"{what}\n--- last {lines} lines of {self.log_path} ---\n"
            f"{tail(self.log_path, lines).rstrip()}\n--- end of log ---"
        )

    def _wait_healthy(self, t0: float) -> None:
        assert self.proc is not None
        s = self.cfg.server
        deadline = t0 + s.startup_timeout_s
        next_note = t0 + 60.0
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise self._fail(
                    f"server ({self.kv_dtype}) exited with code {rc} during start-up "
                    f"after {time.monotonic() - t0:.1f} s"
                )
            try:
                r = requests.get(self.url + "/health", timeout=min(10.0, s.health_poll_s + 5))
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            now = time.monotonic()
            if now >= deadline:
                raise self._fail(
                    f"server ({self.kv_dtype}) not healthy at {self.url}/health after "
                    f"{s.startup_timeout_s:.0f} s (server.startup_timeout_s); it was stopped"
                )
            if now >= next_note:
                last = tail(self.log_path, 1).strip()[:160]
                self._say(f"[server {self.kv_dtype}] waiting {now - t0:.0f} s ... {last}")
                next_note = now + 60.0
            time.sleep(min(s.health_poll_s, max(0.0, deadline - now)))

    def _server_info(self) -> dict[str, Any] | None:
        """Best effort; used to confirm the server really runs the KV dtype we asked for."""
        try:
            r = requests.get(self.url + "/get_server_info", timeout=10)
            if r.status_code == 200:
                data = r.json()
                return data if isinstance(data, dict) else None
        except (requests.RequestException, ValueError):
            pass
        return None

    def flush_cache(self) -> None:
        """Empty the radix cache, so a benchmark repeat measures full prefill (best effort: a
        server without the endpoint is measured as it is)."""
        try:
            requests.post(self.url + "/flush_cache", timeout=30)
        except requests.RequestException:
            pass

    def check_alive(self) -> None:
        """Raise a clear error (with log tail) if the server died while we were using it."""
        if self.proc is not None and self.proc.poll() is not None:
            raise self._fail(f"server ({self.kv_dtype}) exited with code {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        if _group_alive(pgid) or self.proc.poll() is None:
            self._say(f"[server {self.kv_dtype}] stopping process group {pgid}")
        # A second Ctrl-C/SIGTERM must not cut the teardown short.
        main = threading.current_thread() is threading.main_thread()
        saved = {}
        if main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                saved[sig] = signal.signal(sig, signal.SIG_IGN)
        try:
            kill_group(pgid, self.proc, self.cfg.server.shutdown_timeout_s)
            if self.stop_cmd:  # e.g. `docker rm -f NAME` for a server run in a container
                subprocess.run(
                    self.cfg.expand(self.stop_cmd),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=self.cfg.server.shutdown_timeout_s + 30,
                    check=False,
                )
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Server:
        self._install_signals()
        try:
            self.start()
        except BaseException:
            self.stop()
            self._restore_signals()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self._restore_signals()
