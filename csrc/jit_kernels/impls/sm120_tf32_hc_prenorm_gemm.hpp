#pragma once

// Host side of the mHC pre-norm GEMM (`deep_gemm/include/deep_gemm/impls/sm120_tf32_hc_prenorm_gemm.cuh`).
//
// NOTES: the warm path (docs/DEVELOPING.md, "one warm-path policy"): the arch spec cached per device, the split plan
// (integer and floating-point arithmetic on the shape), the `DG_*` knobs through `DgKnobs`, the compiled kernel found
// by a packed integer key: no `getenv`, no source generation, no string hashing.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/python.h>

#include <utility>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../heuristics/sm120_hc_prenorm_gemm.hpp"
#include "../registry.hpp"
#include "sm120_gemm.hpp"

namespace deep_gemm {

struct HcPrenormGemmConfig {
    int num_n_tiles = 3;        // ceil(N / 8), 1..4
    bool round_rna = kHcDefaultRoundRNA;

    using T = HcPrenormTiling;

    std::string symbol() const { return "sm120_tf32_hc_prenorm_gemm"; }

    int smem_bytes() const { return T::smem_bytes(num_n_tiles); }

    // Everything `generate` depends on
    uint64_t key() const { return static_cast<uint64_t>(num_n_tiles) | static_cast<uint64_t>(round_rna) << 8; }

    std::string generate() const {
        return cat("#include <deep_gemm/impls/sm120_tf32_hc_prenorm_gemm.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", T::kNumThreads, ", 1) ", symbol(), "(\n",
                   "        const deep_gemm::bf16_t* a, long long lda, const float* b, long long ldb, float* d,\n",
                   "        float* sqr_sum, float* workspace, unsigned* counters, int M, int N, int K,\n",
                   "        int num_user_splits, int num_int_splits, int group_size) {\n",
                   "    deep_gemm::sm120_tf32_hc_prenorm_gemm_impl<", num_n_tiles, ", ", round_rna ? "true" : "false",
                   ", ", T::kBlockM, ", ", T::kBlockK, ", ", T::kNumStages, ", ", T::kNumThreads, ">(\n",
                   "        a, lda, b, ldb, d, sqr_sum, workspace, counters, M, N, K, num_user_splits, num_int_splits,\n",
                   "        group_size);\n",
                   "}\n");
    }

    // Every N <= 32 maps to one of 4 n-tile counts; both TF32 roundings of `b` (the non-default one is reachable
    // through `_tf32_hc_prenorm_gemm_rounding`, which the tests use to confirm the default)
    static std::vector<KernelSpec> enumerate(const ArchSpec&) {
        std::vector<KernelSpec> specs;
        for (const bool rna: {false, true}) {
            for (int nt = 1; nt <= T::kMaxN / 8; ++nt) {
                const HcPrenormGemmConfig c{nt, rna};
                specs.push_back({"hc_prenorm_gemm", c.symbol(), c.generate(),
                                 cat("n_tiles=", nt, " b_rounding=", rna ? "rna" : "truncate"), T::kNumThreads,
                                 c.smem_bytes(), {"HMMA.1688.F32.TF32", "LDGSTS"}});
            }
        }
        return specs;
    }
};

// Arguments are validated by the caller (csrc/apis/hyperconnection.hpp). `d`: [num_user_splits, M, N] (or [M, N])
// contiguous; `sqr_sum`: [num_user_splits, M] (or [M]) contiguous; `a`/`b` rows 16-byte aligned.
inline void launch_tf32_hc_prenorm_gemm(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                                        const torch::Tensor& sqr_sum, int num_user_splits, bool round_rna) {
    using T = HcPrenormTiling;
    const int m = static_cast<int>(a.size(0)), k = static_cast<int>(a.size(1)), n = static_cast<int>(b.size(0));
    if (m == 0)
        return;
    const c10::cuda::CUDAGuard guard(a.device());
    const auto device = a.get_device();
    // The cached spec, with the SM count of now (`set_num_sms` may change it between calls)
    ArchSpec arch = cached_arch_spec(device);
    arch.num_sms = jit::DeviceRuntime::get().get_num_sms();
    const auto plan = get_hc_prenorm_plan(arch, m, n, k, num_user_splits);
    const HcPrenormGemmConfig config{plan.num_n_tiles, round_rna};
    DG_HOST_ASSERT(config.smem_bytes() == plan.smem_bytes);
    DG_HOST_ASSERT(plan.num_int_splits >= 1 and plan.num_int_splits <= 65535);
    DG_HOST_ASSERT(plan.group_size >= 1 and plan.group_size <= plan.num_int_splits);

    const auto stream = at::cuda::getCurrentCUDAStream(device).stream();
    // Internal splits: level-1 blocks (one per CTA), level-2 blocks (one per group, with two levels), and
    // (num_groups + 1) counters per (caller's split, M tile) that must be zero when the kernel starts
    torch::Tensor workspace;
    float* ws_ptr = nullptr;
    unsigned* counters_ptr = nullptr;
    if (plan.num_int_splits > 1) {
        const int num_groups = plan.num_groups();
        const int64_t num_counters = static_cast<int64_t>(num_user_splits) * plan.num_m_tiles * (num_groups + 1);
        const int64_t num_blocks = static_cast<int64_t>(num_user_splits) * plan.num_m_tiles *
                                   (plan.num_int_splits + (num_groups > 1 ? num_groups : 0));
        const int64_t ws_bytes = num_blocks * T::workspace_block_floats(plan.num_n_tiles) * 4;
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        DG_RUNTIME_CHECK(cudaStreamIsCapturing(stream, &capture) == cudaSuccess,
                         "tf32_hc_prenorm_gemm: cudaStreamIsCapturing failed");
        // The GEMMs' per-(device, stream) counters (zeroed once; every kernel leaves them zero; calls on one stream
        // are ordered), except under graph capture, where a replay could overlap eager calls on the capture stream
        const bool pooled = capture == cudaStreamCaptureStatusNone and num_counters <= SplitCounterPool::kNumCounters;
        const int64_t counter_bytes = pooled ? 0 : (num_counters * 4 + 255) / 256 * 256;
        workspace = torch::empty({counter_bytes + ws_bytes}, a.options().dtype(torch::kUInt8));
        auto* base = static_cast<uint8_t*>(workspace.data_ptr());
        ws_ptr = reinterpret_cast<float*>(base + counter_bytes);
        if (pooled) {
            counters_ptr = SplitCounterPool::get(device, stream);
        } else {
            counters_ptr = reinterpret_cast<unsigned*>(base);
            C10_CUDA_CHECK(cudaMemsetAsync(counters_ptr, 0, num_counters * 4, stream));
        }
    }

    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyHcPrenorm, config.key(), device, [&]() { return config.generate(); }, [&]() { return config.symbol(); });
    const auto launch = jit::LaunchConfig::on(stream, device, T::kNumThreads, plan.smem_bytes, plan.num_m_tiles,
                                              plan.num_int_splits, num_user_splits);
    const long long lda = a.size(0) > 1 ? a.stride(0) : k, ldb = b.size(0) > 1 ? b.stride(0) : k;
    if (DgKnobs::get().print_configs)
        std::fprintf(stderr, "deep_gemm: tf32_hc_prenorm_gemm M=%d N=%d K=%d splits=%d: n_tiles=%d m_tiles=%d "
                     "int_splits=%d group=%d smem=%d rounding=%s\n", m, n, k, num_user_splits, plan.num_n_tiles,
                     plan.num_m_tiles, plan.num_int_splits, plan.group_size, plan.smem_bytes,
                     round_rna ? "rna" : "truncate");
    runtime->launch(launch, a.data_ptr(), lda, b.data_ptr(), ldb, d.data_ptr(), sqr_sum.data_ptr(),
                    static_cast<void*>(ws_ptr), static_cast<void*>(counters_ptr), m, n, k, num_user_splits,
                    plan.num_int_splits, plan.group_size);
}

} // namespace deep_gemm
