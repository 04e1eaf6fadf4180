"""The lowered-source checks (scripts/kerneltools/lowered.py) on small hand-written kernels in
the form TileLang emits: each rule is shown passing on safe code and failing on the hazard it
exists for. The same checks on the real kernels' lowered code: tests/test_decode_lowering.py."""

from __future__ import annotations

import textwrap

import pytest

from scripts.kerneltools.lowered import (
    reduction_hazards,
    shared_memory_bytes,
    strip_barriers_after_reductions,
)

HEAD = """\
extern "C" __global__ void __launch_bounds__(256) main_kernel(float* __restrict__ Out) {
  extern __shared__ __align__(1024) uchar buf_dyn_shmem[];
  void* q_shared = ((void*)((char*)buf_dyn_shmem + 0));
  void* p_shared = ((void*)((char*)buf_dyn_shmem + 4096));
  void* workspace = ((void*)((char*)buf_dyn_shmem + 4096));
  __shared__ signed char valid[64];
  float acc[4];
  float m[1];
"""
# a cross-warp max through the scratch at byte 4096 (256 floats: [4096, 5120))
REDUCE = "  m[0] = tl::AllReduce<tl::MaxOp, 256, 32, 0>::run(m[0], (&(((float*)workspace)[0])));\n"
# a write of p_shared's first 512 bytes: overlaps the scratch
WRITE_P = (
    "  *(float2*)(((float*)p_shared) + ((((int)threadIdx.x) & 63) * 2)) = *(float2*)(acc + 0);\n"
)
# a write of q_shared (bytes [0, 1024)): does not overlap it
WRITE_Q = "  ((float*)q_shared)[((int)threadIdx.x)] = acc[0];\n"
SYNC = "  __syncthreads();\n"


def kernel(*body: str) -> str:
    return HEAD + "".join(body) + "}\n"


def hazards(source: str, backend: str = "cuda") -> list[tuple[int, int]]:
    report = reduction_hazards(source, backend)
    return [(h.reduction_line, h.write_line) for h in report.hazards]


def test_overlapping_write_without_barrier_is_a_hazard():
    src = kernel(REDUCE, WRITE_P)
    assert hazards(src) == [(9, 10)]
    assert reduction_hazards(src, "cuda").reductions == 1


def test_barrier_before_the_write_protects_it():
    assert hazards(kernel(REDUCE, SYNC, WRITE_P)) == []


def test_write_elsewhere_needs_no_barrier_but_a_later_overlap_does():
    assert hazards(kernel(REDUCE, WRITE_Q)) == []
    assert hazards(kernel(REDUCE, WRITE_Q, WRITE_P)) == [(9, 11)]


def test_barrier_inside_a_branch_does_not_count():
    branch = "  if (((int)threadIdx.x) < 128) {\n" + SYNC + "  }\n"
    assert hazards(kernel(REDUCE, branch, WRITE_P)) == [(9, 13)]
    # a barrier in a bare block or a constant loop runs on every path
    block = "  {\n" + SYNC + "  }\n"
    assert hazards(kernel(REDUCE, block, WRITE_P)) == []
    loop = "  for (int i = 0; i < 2; ++i) {\n" + SYNC + "  }\n"
    assert hazards(kernel(REDUCE, loop, WRITE_P)) == []


def test_write_inside_a_branch_counts():
    branch = "  if (((int)threadIdx.x) < 128) {\n" + WRITE_P + "  }\n"
    assert hazards(kernel(REDUCE, branch)) == [(9, 11)]


def test_loop_back_edge_reaches_a_write_before_the_reduction():
    loop = "  for (int it = 0; it < 4; ++it) {\n" + WRITE_P + SYNC + REDUCE + "  }\n"
    assert hazards(kernel(loop)) == [(12, 10)]
    # the same loop with a barrier after the reduction is safe
    loop = "  for (int it = 0; it < 4; ++it) {\n" + WRITE_P + SYNC + REDUCE + SYNC + "  }\n"
    assert hazards(kernel(loop)) == []


def test_next_shared_reduction_starts_with_its_own_barrier():
    again = REDUCE.replace("MaxOp", "SumOp")
    assert hazards(kernel(REDUCE, again, SYNC, WRITE_P)) == []
    # a warp-level reduction (shuffles only) does not
    shuffle = "  m[0] = tl::AllReduce<tl::MaxOp, 4, 1, 0>::run(m[0]);\n"
    assert hazards(kernel(REDUCE, shuffle, WRITE_P)) == [(9, 11)]


def test_reductions_that_stay_in_a_warp_are_not_checked():
    # 32 threads on CUDA (warp 32) or 64 on HIP (wave 64): shuffles, no shared scratch
    src = kernel(REDUCE.replace("256, 32", "32, 1"), WRITE_P)
    assert reduction_hazards(src, "cuda").reductions == 0
    src = kernel(REDUCE.replace("256, 32", "64, 1"), WRITE_P)
    assert reduction_hazards(src, "hip").reductions == 0
    assert hazards(src, "cuda") == [(9, 10)]


def test_named_dynamic_buffer_and_stmatrix_write():
    # the CUDA form: offsets into buf_dyn_shmem itself; stmatrix writes 16 bytes per thread
    red = "  m[0] = tl::AllReduce<tl::SumOp, 256, 32, 0, tl::NamedBarrier<256>>::run(m[0], (&(((float*)buf_dyn_shmem)[2048])));\n"  # noqa: E501
    stmatrix = "  tl::ptx_stmatrix_x2((&(((bfloat16_t*)buf_dyn_shmem)[((((int)threadIdx.x) & 15) * 8) + {base}])), __pack_half2(acc[0], acc[1]));\n"  # noqa: E501
    assert hazards(kernel(red, stmatrix.format(base=4096))) == [(9, 10)]  # bytes 8192..
    assert hazards(kernel(red, stmatrix.format(base=8192))) == []  # bytes 16384..: no overlap


def test_static_arrays_are_their_own_memory():
    assert hazards(kernel(REDUCE, "  valid[((int)threadIdx.x)] = (signed char)1;\n")) == []


def test_unbounded_index_is_assumed_to_overlap():
    data_dependent = "  ((float*)q_shared)[((int)acc[0])] = 0.0f;\n"
    assert hazards(kernel(REDUCE, data_dependent)) == [(9, 10)]
    unknown_call = "  tl::some_copy((&(((float*)q_shared)[0])), acc);\n"
    assert hazards(kernel(REDUCE, unknown_call)) == [(9, 10)]


def test_strip_mutation_removes_the_protecting_barrier():
    src = kernel(REDUCE, SYNC, WRITE_P)
    mutated, removed = strip_barriers_after_reductions(src, "cuda")
    assert removed == 1 and "__syncthreads" not in mutated
    assert hazards(mutated) == [(9, 10)]


def test_shared_memory_bytes_adds_static_arrays():
    src = kernel("  __shared__ __align__(16) float extra[32];\n", WRITE_Q)
    assert shared_memory_bytes(src, 5120) == dict(dynamic=5120, static=64 + 128, total=5312)


@pytest.mark.parametrize("backend", ["cuda", "hip"])
def test_real_shape_of_tilelang_hip_output(backend):
    # HIP 0.1.15 form: named workspace aliases and a reduction inside an unrolled loop
    src = textwrap.dedent("""\
        extern "C" __global__ void __launch_bounds__(256) main_kernel(float* __restrict__ O) {
          extern __shared__ __align__(1024) uchar buf_dyn_shmem[];
          void* S_shared = ((void*)((char*)buf_dyn_shmem + 83968));
          void* ws = ((void*)((char*)buf_dyn_shmem + 83968));
          float s[2];
          #pragma unroll
          for (int i_5 = 0; i_5 < 2; ++i_5) {
            s[i_5] = tl::AllReduce<tl::SumOp, 256, 16, 0>::run(s[i_5], (&(((float*)ws)[0])));
          }
          *(uint2*)(((bfloat16_t*)S_shared) + (((int)threadIdx.x) * 4)) = *(uint2*)(s + 0);
        }
        """)
    assert hazards(src, backend) == [(8, 10)]


def test_scratch_with_bytes_of_its_own_is_reported_as_such():
    # p_shared shares the scratch's bytes: the barrier matters; q_shared does not
    assert reduction_hazards(kernel(REDUCE, SYNC, WRITE_P), "cuda").shared_scratch == 1
    assert reduction_hazards(kernel(REDUCE, SYNC, WRITE_Q), "cuda").shared_scratch == 0
    mutated, _ = strip_barriers_after_reductions(kernel(REDUCE, SYNC, WRITE_Q), "cuda")
    assert hazards(mutated) == []  # nothing to catch without shared bytes
