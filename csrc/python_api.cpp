// The `deep_gemm._C` extension: one small translation unit that registers each `apis/*.hpp`.
// Nothing here touches the GPU at import time.

#include <pybind11/pybind11.h>
#include <torch/python.h>

#include "apis/attention.hpp"
#include "apis/gemm.hpp"
#include "apis/hyperconnection.hpp"
#include "apis/jit.hpp"
#include "apis/layout.hpp"
#include "apis/runtime.hpp"

#ifndef TORCH_EXTENSION_NAME
#define TORCH_EXTENSION_NAME _C
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "deep_gemm for SM120: JIT-compiled mma.sync kernels";
    pybind11::register_exception<deep_gemm::DGValueError>(m, "DGValueError", PyExc_ValueError);
    pybind11::register_exception<deep_gemm::DGTypeError>(m, "DGTypeError", PyExc_TypeError);
    pybind11::register_exception<deep_gemm::DGRuntimeError>(m, "DGRuntimeError", PyExc_RuntimeError);
    deep_gemm::runtime::register_apis(m);
    deep_gemm::jit_api::register_apis(m);
    deep_gemm::attention::register_apis(m);
    deep_gemm::hyperconnection::register_apis(m);
    deep_gemm::gemm_api::register_apis(m);
    deep_gemm::layout::register_apis(m);
}
