"""Patch-queue tooling: fetch the pinned sglang, apply/check/refresh/export patches/series.

Run as `python -m scripts.patchqueue <command>` (the Makefile's queue targets do). Standard
library and the `git` command only, so the main job needs no virtual environment.
"""
