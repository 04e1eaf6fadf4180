"""Config loading, overrides, validation errors, and the two launch commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "gates_fixtures"))
from support import REPO_ROOT  # noqa: E402

from scripts.gates.config import load_config  # noqa: E402
from scripts.gates.errors import ConfigError  # noqa: E402
from scripts.gates.server import build_command, parse_kv_tokens  # noqa: E402

CONFIG = REPO_ROOT / "config" / "gates.toml"


def test_shipped_config_defaults() -> None:
    cfg = load_config(CONFIG)
    assert cfg.server.tp == 8
    assert (cfg.server.nsa_prefill_backend, cfg.server.nsa_decode_backend) == ("tilelang",) * 2
    assert (cfg.runs.baseline_kv_dtype, cfg.runs.candidate_kv_dtype) == ("bfloat16", "fp8_e4m3")
    assert (cfg.accuracy.floor, cfg.accuracy.tolerance, cfg.accuracy.max_invalid) == (
        0.93,
        0.015,
        0.01,
    )
    assert len(cfg.dataset.sha256) == 64
    assert cfg.server.disable_radix_cache is False  # the production default
    assert cfg.throughput.high == 0  # sized from the BF16 server's KV capacity
    assert cfg.preflight.require_gpu and cfg.preflight.require_module
    assert cfg.accuracy.sglang_scorer[1:] == ["-m", "sglang.test.few_shot_gsm8k"]


def test_mtp_adds_the_speculative_flags_to_both_runs() -> None:
    cfg = load_config(CONFIG, ["server.mtp=true"])
    for dtype in (cfg.runs.baseline_kv_dtype, cfg.runs.candidate_kv_dtype):
        cmd = build_command(cfg, dtype)
        i = cmd.index("--speculative-algorithm")
        assert cmd[i : i + 2] == ["--speculative-algorithm", "EAGLE"]
        assert "--speculative-num-draft-tokens" in cmd
    assert "--speculative-algorithm" not in build_command(load_config(CONFIG), "fp8_e4m3")


def test_runs_differ_only_in_kv_cache_dtype() -> None:
    cfg = load_config(CONFIG)
    a = build_command(cfg, cfg.runs.baseline_kv_dtype)
    b = build_command(cfg, cfg.runs.candidate_kv_dtype)
    assert len(a) == len(b)
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert diff == [("bfloat16", "fp8_e4m3")]
    assert a[a.index("bfloat16") - 1] == "--kv-cache-dtype"
    assert a[0] == sys.executable and a[1:3] == ["-m", "sglang.launch_server"]


def test_overrides_are_typed() -> None:
    cfg = load_config(CONFIG, ["server.tp=4", "server.model_path=/m/v32", "throughput.levels=[1,2]",
                               "throughput.low=1", "throughput.high=2"])  # fmt: skip
    assert cfg.server.tp == 4 and cfg.server.model_path == "/m/v32"
    assert cfg.throughput.levels == [1, 2]


@pytest.mark.parametrize(
    "override,message",
    [
        ("server.tp='eight'", "server.tp must be an integer"),
        ("server.bogus=1", "unknown key server.bogus"),
        ("nosuch.key=1", "unknown config section"),
        ("server.extra_args=['--kv-cache-dtype','fp8_e4m3']", "remove --kv-cache-dtype"),
        ("throughput.extra_args=['--seed=3']", "remove --seed=3 from throughput.extra_args"),
        ("runs.candidate_kv_dtype='bfloat16'", "must differ"),
        ("runs.candidate_kv_dtype='int4'", "runs.candidate_kv_dtype must be one of"),
        ("throughput.high=512", "throughput.high = 512 must be in throughput.levels"),
        ("throughput.high_kv_load=0.0", "throughput.high_kv_load must be > 0"),
        ("accuracy.api='chat'", "accuracy.api must be"),
        ("serverport", "--set expects section.key=value"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(CONFIG, [override])


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found; pass --config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_kv_tokens_from_log() -> None:
    log = (
        "[2026-11-28 01:02:03 TP0] Load weight end.\n"
        "[2026-11-28 01:02:04 TP0] KV Cache is allocated. #tokens: 1810432, KV size: 73.1 GB\n"
        "[2026-11-28 01:02:05 TP0] KV Cache is allocated. #tokens: 4096, KV size: 0.2 GB\n"
    )
    assert parse_kv_tokens(log) == 1810432
    assert parse_kv_tokens("no such line") is None
