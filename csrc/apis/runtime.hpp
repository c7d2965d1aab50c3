#pragma once

// Upstream's runtime knobs, plus `init` (called by `deep_gemm/__init__.py`) and the JIT cache statistics.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "../jit/cache.hpp"
#include "../jit/device_runtime.hpp"

namespace deep_gemm::runtime {

inline void register_apis(pybind11::module_& m) {
    namespace py = pybind11;
    m.def("init", [](const std::string& include_dir, const std::string& cuda_home, const std::vector<std::string>& nvrtc_dirs) {
        jit::JitPaths::get().set(include_dir, cuda_home, nvrtc_dirs);
    }, py::arg("include_dir"), py::arg("cuda_home"), py::arg("nvrtc_dirs"));

    m.def("set_num_sms", [](int n) { jit::DeviceRuntime::get().set_num_sms(n); }, py::arg("new_num_sms"));
    m.def("get_num_sms", []() { return jit::DeviceRuntime::get().get_num_sms(); });
    m.def("set_tc_util", [](int v) { jit::DeviceRuntime::get().set_tc_util(v); }, py::arg("new_tc_util"));
    m.def("get_tc_util", []() { return jit::DeviceRuntime::get().get_tc_util(); });
    // NOTES: PDL is recorded but not used: our kernels do not call `griddepcontrol.wait`, so launching them with
    // programmatic serialization could let them read their predecessor's output early
    m.def("set_pdl", [](bool v) { jit::DeviceRuntime::get().set_pdl(v); }, py::arg("new_enable_pdl"));
    m.def("get_pdl", []() { return jit::DeviceRuntime::get().get_pdl(); });
    m.def("set_mk_alignment_for_contiguous_layout", [](int v) { jit::DeviceRuntime::get().set_mk_alignment(v); },
          py::arg("new_value"));
    m.def("get_mk_alignment_for_contiguous_layout", []() { return jit::DeviceRuntime::get().get_mk_alignment(); });

    m.def("get_compile_target", [](int device) { return jit::DeviceRuntime::compile_target(device); },
          py::arg("device") = -1);
    m.def("jit_cache_size", []() { return jit::KernelCache::get().size(); });
}

} // namespace deep_gemm::runtime
