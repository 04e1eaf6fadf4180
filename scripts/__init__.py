"""Project tooling (run from the repository root, e.g. `python -m scripts.patchqueue`)."""
