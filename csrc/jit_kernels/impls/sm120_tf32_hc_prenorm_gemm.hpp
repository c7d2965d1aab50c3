#pragma once

// Host side of the mHC pre-norm GEMM (`deep_gemm/include/deep_gemm/impls/sm120_tf32_hc_prenorm_gemm.cuh`).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/python.h>

#include <map>
#include <mutex>
#include <utility>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../heuristics/sm120_hc_prenorm_gemm.hpp"
#include "../registry.hpp"

namespace deep_gemm {

struct HcPrenormGemmConfig {
    int num_n_tiles = 3;        // ceil(N / 8), 1..4
    bool round_rna = kHcDefaultRoundRNA;

    using T = HcPrenormTiling;

    std::string symbol() const { return "sm120_tf32_hc_prenorm_gemm"; }

    int smem_bytes() const { return T::smem_bytes(num_n_tiles); }

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

// Split-sum counters kept per (device, stream) for the process lifetime: zeroed once when created, and every kernel
// leaves them zero (the CTA a counter elects resets it), so no per-call memset launch is needed. One buffer per stream
// keeps concurrent streams apart; calls on one stream are ordered. Not used while capturing a CUDA graph (a replay
// could run concurrently with eager calls on the capture stream): there the counters come with the call's workspace.
class HcCounterPool {
public:
    static constexpr int64_t kNumCounters = 16384;

    static uint32_t* get(int device, cudaStream_t stream) {
        static HcCounterPool pool;
        std::lock_guard<std::mutex> lock(pool.mutex);
        const auto key = std::make_pair(device, reinterpret_cast<uintptr_t>(stream));
        if (const auto it = pool.buffers.find(key); it != pool.buffers.end())
            return it->second;
        void* ptr = nullptr;
        DG_RUNTIME_CHECK(cudaMalloc(&ptr, kNumCounters * 4) == cudaSuccess,
                         "tf32_hc_prenorm_gemm: cudaMalloc of the split counters failed");
        C10_CUDA_CHECK(cudaMemsetAsync(ptr, 0, kNumCounters * 4, stream));
        return pool.buffers[key] = static_cast<uint32_t*>(ptr);
    }

private:
    std::mutex mutex;
    std::map<std::pair<int, uintptr_t>, uint32_t*> buffers;
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
    const auto arch = current_arch_spec();
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
        const bool pooled = capture == cudaStreamCaptureStatusNone and num_counters <= HcCounterPool::kNumCounters;
        const int64_t counter_bytes = pooled ? 0 : (num_counters * 4 + 255) / 256 * 256;
        workspace = torch::empty({counter_bytes + ws_bytes}, a.options().dtype(torch::kUInt8));
        auto* base = static_cast<uint8_t*>(workspace.data_ptr());
        ws_ptr = reinterpret_cast<float*>(base + counter_bytes);
        if (pooled) {
            counters_ptr = HcCounterPool::get(device, stream);
        } else {
            counters_ptr = reinterpret_cast<unsigned*>(base);
            C10_CUDA_CHECK(cudaMemsetAsync(counters_ptr, 0, num_counters * 4, stream));
        }
    }

    const auto runtime = jit::KernelCache::get().lookup_or_build(config.symbol(), config.generate(),
                                                                 jit::DeviceRuntime::compile_target(device));
    jit::LaunchConfig launch;
    launch.grid_x = static_cast<unsigned>(plan.num_m_tiles);
    launch.grid_y = static_cast<unsigned>(plan.num_int_splits);
    launch.grid_z = static_cast<unsigned>(num_user_splits);
    launch.block_x = T::kNumThreads;
    launch.smem_bytes = static_cast<unsigned>(plan.smem_bytes);
    launch.stream = stream;
    launch.device = device;
    const long long lda = a.size(0) > 1 ? a.stride(0) : k, ldb = b.size(0) > 1 ? b.stride(0) : k;
    if (get_env_flag("DG_PRINT_CONFIGS"))
        std::fprintf(stderr, "deep_gemm: tf32_hc_prenorm_gemm M=%d N=%d K=%d splits=%d: n_tiles=%d m_tiles=%d "
                     "int_splits=%d group=%d smem=%d rounding=%s\n", m, n, k, num_user_splits, plan.num_n_tiles,
                     plan.num_m_tiles, plan.num_int_splits, plan.group_size, plan.smem_bytes,
                     round_rna ? "rna" : "truncate");
    runtime->launch(launch, a.data_ptr(), lda, b.data_ptr(), ldb, d.data_ptr(), sqr_sum.data_ptr(),
                    static_cast<void*>(ws_ptr), static_cast<void*>(counters_ptr), m, n, k, num_user_splits,
                    plan.num_int_splits, plan.group_size);
}

} // namespace deep_gemm
