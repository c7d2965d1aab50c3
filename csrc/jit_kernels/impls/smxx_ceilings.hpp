#pragma once

// Host side of the ceiling micro-kernels (`smxx_ceilings.cuh`), used by `python -m deep_gemm.bench`.

#include <c10/cuda/CUDAGuard.h>
#include <torch/python.h>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../registry.hpp"

namespace deep_gemm {

struct CeilingConfig {
    // "read", "write", "mma_fp8", "mma_fp8_block_scaled", "mma_tf32", "mma_bf16"
    std::string kind;
    static constexpr int kNumThreads = 256, kNumAccum = 8;

    std::string symbol() const { return cat("smxx_ceiling_", kind); }

    std::string generate() const {
        std::string s = cat("#include <deep_gemm/impls/smxx_ceilings.cuh>\n\nextern \"C\" __global__ void __launch_bounds__(",
                            kNumThreads, ") ", symbol());
        if (kind == "read")
            return s + cat("(const uint4* data, long long num_vec, unsigned* sink) {\n",
                           "    deep_gemm::smxx_ceiling_read_impl<", kNumThreads, ">(data, num_vec, sink);\n}\n");
        if (kind == "write")
            return s + cat("(uint4* data, long long num_vec, unsigned value) {\n",
                           "    deep_gemm::smxx_ceiling_write_impl<", kNumThreads, ">(data, num_vec, value);\n}\n");
        const int id = kind == "mma_fp8" ? 0 : kind == "mma_fp8_block_scaled" ? 1 : kind == "mma_tf32" ? 2 : 3;
        return s + cat("(int num_iters, unsigned seed, float* sink) {\n",
                       "    deep_gemm::smxx_ceiling_mma_impl<", id, ", ", kNumAccum, ">(num_iters, seed, sink);\n}\n");
    }

    static std::vector<std::string> kinds(const ArchSpec& arch) {
        std::vector<std::string> k = {"read", "write", "mma_tf32", "mma_bf16"};
        if (arch.fp8_mma) k.push_back("mma_fp8");
        if (arch.block_scaled_mma) k.push_back("mma_fp8_block_scaled");
        return k;
    }

    static std::vector<KernelSpec> enumerate(const ArchSpec& arch) {
        std::vector<KernelSpec> specs;
        for (const auto& k: kinds(arch)) {
            const CeilingConfig c{k};
            std::vector<std::string> sass;
            if (k == "mma_fp8" and arch.major == 12) sass = {"QMMA.16832"};
            if (k == "mma_fp8_block_scaled") sass = {"QMMA.SF.16832"};
            specs.push_back({"ceilings", c.symbol(), c.generate(), k, kNumThreads, 0, sass});
        }
        return specs;
    }
};

// Launch one ceiling kernel on the current stream. `buffer` is the data for read/write (its bytes, 16-aligned);
// for mma kinds `iters` is the loop count per thread and `blocks_per_sm` sets the grid.
inline void launch_ceiling(const std::string& kind, const torch::Tensor& buffer, int iters, int blocks_per_sm) {
    DG_CHECK(buffer.is_cuda() and buffer.is_contiguous() and buffer.nbytes() % 16 == 0,
             "ceiling: `buffer` must be a contiguous CUDA tensor of a multiple of 16 bytes; got ", buffer.nbytes());
    const c10::cuda::CUDAGuard guard(buffer.device());
    const int device = buffer.get_device();
    const auto arch = arch_spec_for_target(jit::DeviceRuntime::compile_target(device));
    const auto kinds = CeilingConfig::kinds(arch);
    DG_CHECK(std::find(kinds.begin(), kinds.end(), kind) != kinds.end(), "ceiling: `kind` must be one of ", kinds,
             " on ", jit::DeviceRuntime::device_description(device), "; got '", kind, "'");
    const CeilingConfig config{kind};
    const auto runtime = jit::KernelCache::get().lookup_or_build(config.symbol(), config.generate(), arch.target);
    const auto launch = jit::LaunchConfig::on(at::cuda::getCurrentCUDAStream(device).stream(), device,
                                              CeilingConfig::kNumThreads, 0,
                                              jit::DeviceRuntime::get().get_num_sms() * blocks_per_sm);
    const long long num_vec = static_cast<long long>(buffer.nbytes() / 16);
    if (kind == "read")
        runtime->launch(launch, buffer.data_ptr(), num_vec, buffer.data_ptr());
    else if (kind == "write")
        runtime->launch(launch, buffer.data_ptr(), num_vec, 0x3f800000u);
    else
        runtime->launch(launch, iters, 0x1234567u, buffer.data_ptr());
}

} // namespace deep_gemm
