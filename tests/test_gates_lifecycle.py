"""Server lifecycle against a real local HTTP server process (tests/gates_fixtures/fake_server.py):
healthy, dies at start-up, never healthy, HTTP 500s, unreachable, Ctrl-C/SIGTERM. Each failure
must give a clear message and leave no process of the server's group behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent / "gates_fixtures"))
from support import (  # noqa: E402
    FIXTURES,
    REPO_ROOT,
    alive,
    free_port,
    pids_in_log,
    wait_gone,
    write_config,
)

from scripts.gates import cli, gsm8k  # noqa: E402
from scripts.gates.client import generate  # noqa: E402
from scripts.gates.config import load_config  # noqa: E402
from scripts.gates.errors import RequestFailed, ServerError  # noqa: E402
from scripts.gates.server import Server, group_members  # noqa: E402

MINI = FIXTURES / "gsm8k_mini.jsonl"


def _cfg(tmp_path: Path, mode: str = "healthy", *extra: str, **server: object):  # type: ignore[no-untyped-def]
    return load_config(write_config(tmp_path, mode, list(extra), server=server))


def test_healthy_server_then_full_teardown(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    log = tmp_path / "server.log"
    with Server(cfg, "fp8_e4m3", log, quiet=True) as srv:
        assert srv.info is not None
        assert srv.info.kv_tokens == 1_810_000  # first line, not the draft pool's
        assert srv.info.reported == {"kv_cache_dtype": "fp8_e4m3", "model_path": "fake-model"}
        leader, helper = pids_in_log(log)
        assert alive(leader) and alive(helper)
        assert set(group_members(leader)) >= {leader, helper}
        text, _ = generate(srv.url, "Question: x\nAnswer:", api="completions",
                           max_new_tokens=8, stop=[], timeout_s=5)  # fmt: skip
        assert "cannot solve" in text
        # a second server on the same port is refused before launching anything
        with pytest.raises(ServerError, match="already answers on"):
            Server(cfg, "bfloat16", tmp_path / "second.log", quiet=True).start()
        assert not (tmp_path / "second.log").exists()
    assert wait_gone(leader, helper) == []
    assert group_members(leader) == []


def test_dies_at_startup_shows_log_tail_and_kills_orphans(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "die")
    log = tmp_path / "server.log"
    t0 = time.monotonic()
    with pytest.raises(ServerError) as err:
        with Server(cfg, "fp8_e4m3", log, quiet=True):
            pytest.fail("must not get here")
    msg = str(err.value)
    assert "exited with code 1 during start-up" in msg
    assert "HIP out of memory" in msg and f"last 10 lines of {log}" in msg
    assert time.monotonic() - t0 < 10  # detected early, not at startup_timeout_s
    leader, helper = pids_in_log(log)
    assert wait_gone(leader, helper) == []  # the orphaned helper was killed too


def test_never_healthy_times_out_and_stops_server(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "never-healthy", startup_timeout_s=1.5)
    log = tmp_path / "server.log"
    with pytest.raises(
        ServerError, match=r"not healthy at http://127\.0\.0\.1:\d+/health after 2 s"
    ):
        Server(cfg, "bfloat16", log, quiet=True).__enter__()
    assert "serving on 127.0.0.1" in log.read_text()
    assert wait_gone(*pids_in_log(log)) == []


def test_http_500_is_a_clear_error_and_cli_cleans_up(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, "http500")
    log = tmp_path / "server.log"
    with Server(cfg, "bfloat16", log, quiet=True) as srv:
        data = gsm8k.Dataset(gsm8k.parse_jsonl(MINI.read_bytes(), "mini"), "mini", "", False)
        with pytest.raises(RequestFailed, match=r"HTTP 500 for POST .*/generate: Internal Server"):
            gsm8k.evaluate(cfg, srv.url, data, "t")
    assert wait_gone(*pids_in_log(log)) == []
    # the same through the CLI: exit 3, message on stderr, nothing left running
    config = write_config(tmp_path, "http500")
    rc = cli.main(["accuracy", "--config", str(config), "--data-path", str(MINI),
                   "--allow-unverified-data"])  # fmt: skip
    assert rc == 3
    assert "HTTP 500" in capsys.readouterr().err
    logs = list((tmp_path / "reports").glob("gates-*/logs/server-baseline-*.log"))
    assert len(logs) == 1
    assert wait_gone(*pids_in_log(logs[0])) == []


def test_unreachable_server_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RequestFailed, match="cannot reach the server at .* is it running"):
        generate(url, "x", api="generate", max_new_tokens=1, stop=[], timeout_s=2)


def test_sigterm_ignoring_server_is_killed(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "healthy", "--ignore-sigterm", shutdown_timeout_s=0.5)
    log = tmp_path / "server.log"
    with Server(cfg, "bfloat16", log, quiet=True):
        leader, helper = pids_in_log(log)
    assert wait_gone(leader, helper, timeout=5) == []


def test_exception_in_body_tears_down(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    log = tmp_path / "server.log"
    with pytest.raises(ZeroDivisionError):
        with Server(cfg, "bfloat16", log, quiet=True):
            pids = pids_in_log(log)
            _ = 1 / 0
    assert wait_gone(*pids) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_cli_stops_server(tmp_path: Path, sig: signal.Signals) -> None:
    config = write_config(tmp_path, "healthy")
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.gates",
            "serve",
            "--config",
            str(config),
            "--log",
            str(log),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{load_config(config).server.port}/health"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("serve never became healthy")
        time.sleep(0.5)  # let `serve` reach its wait loop
        pids = pids_in_log(log)
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert ("SIGTERM" in err) if sig == signal.SIGTERM else ("interrupted" in err)
        assert wait_gone(*pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_running_another_kv_dtype_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, "healthy", ["--report-dtype", "fp8_e4m3"])
    rc = cli.main(["throughput", "--config", str(config)])
    assert rc == 3
    assert "reports kv_cache_dtype='fp8_e4m3' but the gates asked for 'bfloat16'" in (
        capsys.readouterr().err
    )
    (log,) = (tmp_path / "reports").glob("gates-*/logs/server-baseline-*.log")
    assert wait_gone(*pids_in_log(log)) == []
