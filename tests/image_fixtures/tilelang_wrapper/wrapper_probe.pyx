# cython: language_level=3
# The constructs TileLang's jit/adapter/cython/cython_wrapper.pyx is made of (written for this
# test, not copied): a cdef class with typed attributes, __cinit__, a cpdef method with a C
# integer default, libc cimports, f-strings, list/dict iteration and int conversions.
cimport cython
from libc.stdint cimport int64_t


cdef class KernelWrapperProbe:
    cdef:
        list params
        list result_idx
        object shape_map
        object lib

    def __cinit__(self, list params, list result_idx, lib):
        self.params = params
        self.result_idx = result_idx
        self.shape_map = {}
        self.lib = lib

    def set_shape_map(self, shape_map):
        self.shape_map = shape_map
        return self

    cpdef forward(self, list inputs, int64_t stream = -1):
        cdef int total_params = len(self.params)
        cdef int total_inputs = len(inputs)
        cdef int i
        if total_params != total_inputs + len(self.result_idx):
            raise ValueError(f"Expected {total_params} inputs, got {total_inputs}")
        args = []
        for i in range(total_inputs):
            value = inputs[i]
            if isinstance(value, int):
                args.append(int(value) + i)
            elif isinstance(value, float):
                args.append(float(value))
            else:
                raise ValueError(f"Unsupported argument type: {type(value)}")
        for key, (idx, dim) in self.shape_map.items():
            args.append(inputs[idx] * dim)
        args.append(stream)
        return self.lib(*args)
