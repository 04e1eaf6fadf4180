"""Kernel tools: benchmarks, lowering, kernel prebuild, profiling, the GPU suite, and the harness
the kernel tests import (float64 reference, patched-module loader, shapes, KV store oracle).

Run the tools from the repository root as modules, e.g. `python -m scripts.kerneltools.lower`;
`amd_compile` compiles Triton kernels for gfx942/gfx950 on the CPU.
"""
