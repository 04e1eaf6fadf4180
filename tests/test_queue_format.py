"""`make queue-format`: sglang's black + isort on the files the series touches, on real repos.

Every unformatted line is traced to the patch that wrote it; lines of the release only warn.
"""

from __future__ import annotations

import json

import pytest
from queue_fixtures import SERVER_ARGS, UTILS, change, make_project, queue_with

from scripts.patchqueue.apply import QueueError
from scripts.patchqueue.cli import main
from scripts.patchqueue.formatting import changed_lines, run_format
from scripts.pins import read_pins

PINS = read_pins()
NEW = "python/sglang/srt/new_module.py"


def with_formatter_pins(cfg, black=PINS["BLACK_VERSION"], isort=PINS["ISORT_VERSION"]):
    lock = cfg.root / "versions.env"
    lock.write_text(lock.read_text() + f"BLACK_VERSION={black}\nISORT_VERSION={isort}\n")
    return type(cfg).for_root(cfg.root)


@pytest.fixture
def cfg(tmp_path):
    return with_formatter_pins(make_project(tmp_path))


def errors(report):
    return [(p.kind, p.patch, p.file, p.line) for p in report.problems if p.severity == "error"]


# Formatted as sglang formats: sglang is first-party (its own section) and a long import wraps
# black-style; isort's defaults would object to both.
SGLANG_STYLE = """\
import os

import torch

from sglang.srt.utils import (
    CONST_1,
    CONST_2,
    CONST_10,
    CONST_11,
    CONST_12,
    CONST_13,
    CONST_14,
    CONST_15,
)

PATHS = (os.sep, torch, CONST_1, CONST_2, CONST_10, CONST_11, CONST_12, CONST_13)
"""


def test_clean_series_passes(cfg):
    queue_with(
        cfg,
        (change(UTILS, "CONST_3 = 3", "CONST_3 = 33"), "utils: CONST_3"),
        ({NEW: SGLANG_STYLE}, "new module"),
    )
    report = run_format(cfg)
    assert report.ok, report.problems
    assert sorted(report.data["files"]) == [NEW, UTILS]


def test_each_unformatted_line_names_its_patch(cfg, capsys):
    names = queue_with(
        cfg,
        (change(UTILS, "CONST_3 = 3", "CONST_3 = {  'a':1 }"), "utils: black-unclean"),
        (change(SERVER_ARGS, "value + 5", "value + 55"), "server_args: clean"),
        ({NEW: "import sys\nimport os\n\nPATHS = (os.sep, sys.prefix)\n"}, "unsorted imports"),
    )
    assert main(["--root", str(cfg.root), "format"]) == 1
    report = json.loads((cfg.reports_dir / "queue-format.json").read_text())
    found = {(p["kind"], p["patch"], p["file"], p["line"]) for p in report["problems"]}
    assert found == {
        ("not-black-clean", names[0], UTILS, 4),
        ("not-isort-clean", names[2], NEW, 1),
    }
    printed = capsys.readouterr().err
    assert "-m black python/sglang/srt/utils.py" in printed  # the command that fixes it
    assert "-m isort --profile black --project sglang" in printed


def test_base_lines_only_warn(tmp_path):
    """A release line that black would change is not the series' fault."""
    from queue_fixtures import UPSTREAM

    files = dict(UPSTREAM)
    files["sglang/srt/utils.py"] = UPSTREAM["sglang/srt/utils.py"] + "X = {  'b':2 }\n"
    cfg = with_formatter_pins(make_project(tmp_path, files=files))
    queue_with(cfg, (change(UTILS, "CONST_3 = 3", "CONST_3 = 33"), "utils: clean change"))
    report = run_format(cfg)
    assert report.ok
    (warning,) = report.problems
    assert (warning.severity, warning.patch, warning.line) == ("warning", None, 31)


def test_wrong_formatter_version_is_refused(tmp_path):
    cfg = with_formatter_pins(make_project(tmp_path), black="0.0.1")
    with pytest.raises(QueueError, match="black .* pins 0.0.1.*make env"):
        run_format(cfg)


def test_changed_lines_maps_a_diff_to_original_lines():
    diff = "--- a\n+++ b\n@@ -3,4 +3,5 @@\n x\n-y\n+y1\n+y2\n z\n@@ -10,1 +11,2 @@\n w\n+v\n"
    assert changed_lines(diff) == [4, 10]
