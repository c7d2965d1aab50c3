#pragma once

// The compile-only entry point: build any kernel configuration for an explicit target without a GPU, and
// report its resource usage. CI uses it to compile every configuration the heuristics can choose.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "../jit/cache.hpp"
#include "../jit_kernels/impls/smxx_clean_logits.hpp"
#include "../jit_kernels/impls/sm120_fp8_paged_mqa_logits.hpp"
#include "../jit_kernels/impls/sm120_fp8_mqa_logits.hpp"
#include "../jit_kernels/impls/sm120_tf32_hc_prenorm_gemm.hpp"
#include "../jit_kernels/impls/smxx_ceilings.hpp"
#include "../jit_kernels/impls/sm120_gemm.hpp"
#include "../jit_kernels/impls/smxx_layout.hpp"

namespace deep_gemm::jit_api {

// Every family's configurations for one target; new kernel families add themselves here
// (`sm120_mode`: the configurations a GPU of `target` picks when DG_SM120_MODE=1, used to pre-compile the GPU tests)
inline std::vector<KernelSpec> all_kernel_specs(const std::string& target, bool sm120_mode = false) {
    const auto arch = sm120_mode ? with_sm120_planning(arch_spec_for_target(target)) : arch_spec_for_target(target);
    std::vector<KernelSpec> specs;
    const auto add = [&](std::vector<KernelSpec>&& more) {
        for (auto& s: more) specs.push_back(std::move(s));
    };
    add(CleanLogitsConfig::enumerate(arch));
    add(PagedMQALogitsConfig::enumerate(arch));
    add(RaggedMqaLogitsConfig::enumerate(arch));
    add(HcPrenormGemmConfig::enumerate(arch));
    add(CeilingConfig::enumerate(arch));
    add(GemmConfig::enumerate(arch));
    add(SfMnMajorConfig::enumerate(arch)), add(SfKGroupedPackConfig::enumerate(arch));
    return specs;
}

inline pybind11::dict spec_to_dict(const KernelSpec& s) {
    pybind11::dict d;
    d["family"] = s.family;
    d["symbol"] = s.symbol;
    d["description"] = s.description;
    d["num_threads"] = s.num_threads;
    d["dynamic_smem"] = s.dynamic_smem;
    d["expected_sass"] = s.expected_sass;
    return d;
}

inline void register_apis(pybind11::module_& m) {
    namespace py = pybind11;
    m.def("launch_ceiling", &launch_ceiling, py::arg("kind"), py::arg("buffer"), py::arg("iters") = 0,
          py::arg("blocks_per_sm") = 4);
    m.def("list_kernel_configs", [](const std::string& target, bool sm120_mode) {
        py::list out;
        for (const auto& s: all_kernel_specs(target, sm120_mode))
            out.append(spec_to_dict(s));
        return out;
    }, py::arg("target"), py::arg("sm120_mode") = false);

    m.def("compile_kernel_config", [](const std::string& target, size_t index, bool sm120_mode) {
        const auto specs = all_kernel_specs(target, sm120_mode);
        DG_CHECK(index < specs.size(), "compile_kernel_config: `index` must be < ", specs.size(), " for ", target,
                 "; got ", index);
        const auto& spec = specs[index];
        jit::CubinEntry entry;
        {
            py::gil_scoped_release release;
            entry = jit::get_cubin(spec.symbol, spec.source, target);
        }
        const auto usage = jit::parse_ptxas_log(entry.log, spec.symbol);
        py::dict d = spec_to_dict(spec);
        d["target"] = target;
        d["registers"] = usage.registers;
        d["static_smem"] = usage.static_smem;
        d["total_smem"] = usage.static_smem + spec.dynamic_smem;
        d["stack_frame"] = usage.stack_frame;
        d["spill_stores"] = usage.spill_stores;
        d["spill_loads"] = usage.spill_loads;
        d["resources_found"] = usage.found;
        d["cubin_path"] = path_join(entry.dir, "kernel.cubin");
        d["from_disk_cache"] = entry.from_disk;
        d["log"] = entry.log;
        return d;
    }, py::arg("target"), py::arg("index"), py::arg("sm120_mode") = false);
}

} // namespace deep_gemm::jit_api
