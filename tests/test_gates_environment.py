"""What the reports record about where they ran (scripts/gates/environment.py): image tag and
digest from ci/gates.sh's variables, package versions from the server's interpreter, GPU model
and driver from rocm-smi (a fake one here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "gates_fixtures"))
import support  # noqa: E402, F401  (puts the repository root on sys.path)

from scripts.gates import environment  # noqa: E402

ROCM_SMI_JSON = {
    "card0": {"Card Series": "AMD Instinct MI300X", "Card model": "0x74a1"},
    "card1": {"Card Series": "AMD Instinct MI300X", "Card model": "0x74a1"},
    "system": {"Driver version": "6.10.5"},
}


@pytest.fixture
def fake_rocm_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "bin" / "rocm-smi"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(ROCM_SMI_JSON)}\nEOF\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:/usr/bin:/bin")


def test_gpu_model_and_driver_from_rocm_smi(fake_rocm_smi: None) -> None:
    found = environment.gpus()
    assert found == {
        "gpu_models": ["AMD Instinct MI300X"],
        "gpu_count": 2,
        "driver": "6.10.5",
        "source": "rocm-smi",
    }


def test_image_from_the_ci_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = "sha256:" + "cd" * 32
    record = tmp_path / "image.json"
    record.write_text(json.dumps({"image": "img:q1-gfx942", "base_digest": digest,
                                  "image_id": "sha256:11", "queue_hash": "q1"}))  # fmt: skip
    monkeypatch.setenv("GATES_IMAGE", "img:q1-gfx942")
    monkeypatch.setenv("GATES_IMAGE_RECORD", str(record))
    img = environment.image()
    assert img["tag"] == "img:q1-gfx942" and img["base_digest"] == digest
    assert img["queue_hash"] == "q1"


def test_versions_from_the_server_interpreter() -> None:
    found = environment.python_versions(sys.executable)
    assert found["torch"] and found["tilelang"]  # the CPU venv has both
    assert "torch_hip" in found and "tilelang_commit" in found


def test_markdown_line_names_everything(fake_rocm_smi: None, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GATES_IMAGE", "img:t")
    line = environment.markdown(environment.collect(sys.executable))
    for part in ("Image `img:t`", "sglang", "TileLang", "aiter", "torch", "ROCm",
                 "AMD Instinct MI300X x2", "driver 6.10.5"):  # fmt: skip
        assert part in line
