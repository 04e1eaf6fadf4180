"""Kernel tools: compile checks and helpers shared by scripts and tests."""
