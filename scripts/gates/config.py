"""Load ``config/gates.toml`` into typed dataclasses, with ``section.key=value`` overrides.

One file drives both gates so the BF16 and FP8 runs can only differ where the config says.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.gates.errors import ConfigError

# tomllib is 3.11+; the ROCm images run Python 3.10, where tomli (same API, TOMLI_VERSION in
# versions.env, installed by the image and by scripts/setup_env.sh) stands in for it.
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    try:
        import tomli as tomllib
    except ImportError as exc:
        raise ImportError(
            "Python < 3.11 needs tomli to read config/gates.toml: pip install tomli "
            "(the version pinned as TOMLI_VERSION in versions.env)"
        ) from exc

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "gates.toml"

# Flags the lifecycle sets itself; they may not appear in server.extra_args.
MANAGED_SERVER_FLAGS = (
    "--model-path",
    "--tp-size",
    "--tp",
    "--host",
    "--port",
    "--kv-cache-dtype",
    "--attention-backend",
    "--nsa-prefill-backend",
    "--nsa-decode-backend",
    "--mem-fraction-static",
)
# Flags the throughput driver sets itself; they may not appear in throughput.extra_args.
MANAGED_BENCH_FLAGS = (
    "--backend",
    "--host",
    "--port",
    "--base-url",
    "--dataset-name",
    "--random-input-len",
    "--random-output-len",
    "--random-range-ratio",
    "--num-prompts",
    "--max-concurrency",
    "--seed",
    "--output-file",
    "--model",
    "--warmup-requests",
)
KV_DTYPES = ("bfloat16", "bf16", "fp8_e4m3", "fp8_e5m2", "auto")


@dataclass
class ServerConfig:
    launch: list[str] = field(default_factory=lambda: ["{python}", "-m", "sglang.launch_server"])
    model_path: str = "/models/DeepSeek-V3.2"
    host: str = "127.0.0.1"
    port: int = 30000
    tp: int = 8
    attention_backend: str = "nsa"
    nsa_prefill_backend: str = "tilelang"
    nsa_decode_backend: str = "tilelang"
    mem_fraction_static: float = 0.85
    trust_remote_code: bool = True
    disable_radix_cache: bool = False
    # MTP (DeepSeek's next-token heads, sglang's EAGLE path): verify and draft-extend then run
    # through the FP8 kernel too. Off by default; `--mtp` / GATES_MTP=1 turns it on.
    mtp: bool = False
    mtp_args: list[str] = field(
        default_factory=lambda: [
            "--speculative-algorithm", "EAGLE",
            "--speculative-num-steps", "3",
            "--speculative-eagle-topk", "1",
            "--speculative-num-draft-tokens", "4",
        ]
    )  # fmt: skip
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 3600.0
    health_poll_s: float = 2.0
    shutdown_timeout_s: float = 60.0
    log_tail_lines: int = 40


@dataclass
class RunsConfig:
    baseline_kv_dtype: str = "bfloat16"
    candidate_kv_dtype: str = "fp8_e4m3"


@dataclass
class DatasetConfig:
    url: str = ""
    sha256: str = ""
    cache_dir: str = "build/cache/gsm8k"
    data_path: str = ""
    allow_unverified: bool = False


@dataclass
class AccuracyConfig:
    num_questions: int = 200
    num_shots: int = 5
    fewshot_path: str = ""
    max_new_tokens: int = 512
    parallel: int = 128
    api: str = "generate"
    stop: list[str] = field(default_factory=lambda: ["Question:", "Assistant:", "<|separator|>"])
    request_timeout_s: float = 600.0
    metric: str = "flexible"
    floor: float = 0.93
    tolerance: float = 0.015
    max_invalid: float = 0.01
    # sglang's own few-shot GSM8K scorer (where the 0.93 floor comes from), run on the same
    # server and data after ours and reported beside it; [] = off.
    sglang_scorer: list[str] = field(
        default_factory=lambda: ["{python}", "-m", "sglang.test.few_shot_gsm8k"]
    )
    sglang_scorer_timeout_s: float = 3600.0


@dataclass
class ThroughputConfig:
    bench: list[str] = field(default_factory=lambda: ["{python}", "-m", "sglang.bench_serving"])
    dataset_name: str = "random-ids"
    input_len: int = 4096
    output_len: int = 1024
    range_ratio: float = 1.0
    seed: int = 1
    levels: list[int] = field(default_factory=lambda: [1, 8, 64, 256])
    low: int = 8
    # 0 = sized at run time from the KV capacity the baseline (BF16) server reports:
    # ceil(high_kv_load * bf16 #tokens / (input_len + output_len)) concurrent requests.
    high: int = 0
    high_kv_load: float = 1.5
    prompts_per_slot: int = 4
    min_prompts: int = 8
    repeats: int = 3
    warmup_requests: int = 1
    extra_args: list[str] = field(default_factory=list)
    bench_timeout_s: float = 3600.0
    min_throughput_ratio: float = 1.0
    max_tpot_ratio: float = 1.05
    min_kv_ratio: float = 1.7


@dataclass
class PreflightConfig:
    """What must hold before anything is downloaded or started (tests turn parts off)."""

    require_gpu: bool = True
    # A module only the patched sglang has, imported by the interpreter that runs the server.
    require_module: str = "sglang.srt.mem_cache.fp8_kv_store"
    require_model_dir: bool = True


@dataclass
class UpstreamConfig:
    """Optional third run: the unpatched upstream image of the same release, KV dtype of the
    baseline, so a regression the patches cause in the bf16 kernels shows up."""

    launch: list[str] = field(default_factory=list)  # [] = off; the server command prefix
    stop: list[str] = field(default_factory=list)  # run after teardown, e.g. docker rm -f NAME
    accuracy_tolerance: float = 0.015
    min_throughput_ratio: float = 0.95
    max_tpot_ratio: float = 1.05


@dataclass
class ReportConfig:
    dir: str = "reports"


@dataclass
class GatesConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    runs: RunsConfig = field(default_factory=RunsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    accuracy: AccuracyConfig = field(default_factory=AccuracyConfig)
    throughput: ThroughputConfig = field(default_factory=ThroughputConfig)
    preflight: PreflightConfig = field(default_factory=PreflightConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    source: str = ""

    def expand(self, argv: list[str]) -> list[str]:
        """Substitute ``{python}`` (this interpreter, so sglang must import here too)."""
        return [a.replace("{python}", sys.executable) for a in argv]

    def resolve_path(self, p: str) -> Path:
        """Relative paths in the config are relative to the repository root."""
        path = Path(p).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path


_SECTIONS = {f.name: f.type for f in dataclasses.fields(GatesConfig) if f.name != "source"}


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"{section}.{key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        kinds = {type(x) for x in default} or {type(x) for x in value}
        if value and kinds and not all(type(x) in kinds for x in value):
            raise ConfigError(f"{where} items must be {'/'.join(k.__name__ for k in kinds)}")
        return list(value)
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{where} must be a table of strings, got {value!r}")
        return dict(value)
    return value


def _apply(cfg: GatesConfig, data: dict[str, Any]) -> None:
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown config section [{section}]; known: {', '.join(_SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        obj = getattr(cfg, section)
        known = {f.name for f in dataclasses.fields(obj)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"unknown key {section}.{key}; known keys: {', '.join(sorted(known))}"
                )
            setattr(obj, key, _coerce(section, key, value, getattr(obj, key)))


def parse_override(text: str) -> dict[str, Any]:
    """``section.key=value`` with a TOML value; a bare word is taken as a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set expects section.key=value (e.g. server.port=30001), got {text!r}")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return {section: {key: value}}


def validate(cfg: GatesConfig) -> None:
    s, r, a, t = cfg.server, cfg.runs, cfg.accuracy, cfg.throughput
    if not s.launch:
        raise ConfigError("server.launch is empty; set it to the server command prefix")
    for args, managed, where in (
        (s.extra_args, MANAGED_SERVER_FLAGS, "server.extra_args"),
        (t.extra_args, MANAGED_BENCH_FLAGS, "throughput.extra_args"),
    ):
        for a_ in args:
            if a_.split("=", 1)[0] in managed:
                raise ConfigError(f"remove {a_} from {where}: the gates set it from the config")
    for name in ("baseline_kv_dtype", "candidate_kv_dtype"):
        if getattr(r, name) not in KV_DTYPES:
            raise ConfigError(f"runs.{name} must be one of {', '.join(KV_DTYPES)}")
    if r.baseline_kv_dtype == r.candidate_kv_dtype:
        raise ConfigError("runs.baseline_kv_dtype and runs.candidate_kv_dtype must differ")
    if not 1 <= s.port <= 65535:
        raise ConfigError(f"server.port {s.port} is not a TCP port")
    if a.api not in ("generate", "completions"):
        raise ConfigError("accuracy.api must be 'generate' (/generate) or 'completions'")
    if a.metric not in ("flexible", "strict"):
        raise ConfigError("accuracy.metric must be 'flexible' or 'strict'")
    if a.num_questions < 1 or a.num_shots < 0 or a.parallel < 1:
        raise ConfigError("accuracy.num_questions/parallel must be >= 1 and num_shots >= 0")
    for name in ("floor", "tolerance", "max_invalid"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            raise ConfigError(f"accuracy.{name} must be within [0, 1]")
    if not t.levels or any(c < 1 for c in t.levels):
        raise ConfigError("throughput.levels must be a non-empty list of concurrencies >= 1")
    if t.low not in t.levels:
        raise ConfigError(f"throughput.low = {t.low} must be in throughput.levels")
    if t.high != 0 and t.high not in t.levels:
        raise ConfigError(
            f"throughput.high = {t.high} must be in throughput.levels (or 0: sized from the "
            "BF16 server's KV capacity)"
        )
    if t.high_kv_load <= 0:
        raise ConfigError("throughput.high_kv_load must be > 0")
    if t.repeats < 1:
        raise ConfigError("throughput.repeats must be >= 1")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> GatesConfig:
    cfg = GatesConfig()
    p = Path(path) if path else DEFAULT_CONFIG
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; pass --config PATH")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    _apply(cfg, data)
    for text in overrides or []:
        _apply(cfg, parse_override(text))
    cfg.source = str(p)
    validate(cfg)
    return cfg


def as_dict(cfg: GatesConfig) -> dict[str, Any]:
    """The effective config, recorded in every report."""
    return dataclasses.asdict(cfg)
