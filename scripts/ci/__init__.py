"""Helpers of the ci/ pipeline scripts (run on the runners, Python >= 3.10)."""
