#pragma once

// Host side of the arch-agnostic clean-logits kernel (`deep_gemm/include/deep_gemm/impls/smxx_clean_logits.cuh`):
// warps own runs of (row, 8 KB column segment) items, so long masked spans are shared by several warps.

#include <algorithm>
#include <c10/cuda/CUDAGuard.h>
#include <mutex>
#include <torch/python.h>
#include <unordered_map>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../registry.hpp"

namespace deep_gemm {

enum class CleanMode : int { kRagged = 0, kPaged2D = 1, kPaged1D = 2 };

struct CleanLogitsConfig {
    bool bf16 = false;
    CleanMode mode = CleanMode::kRagged;
    static constexpr int kNumThreads = 256;
    static constexpr int kSegmentBytes = 8192;

    std::string symbol() const { return "smxx_clean_logits"; }

    std::string generate() const {
        const char* t = bf16 ? "deep_gemm::bf16_t" : "float";
        return cat("#include <deep_gemm/impls/smxx_clean_logits.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", kNumThreads, ") ", symbol(), "(\n",
                   "        ", t, "* logits, long long row_stride, int num_rows, int num_cols, const int* ks,\n",
                   "        const int* ends, long long ends_stride_b, long long ends_stride_t, int next_n,\n",
                   "        int seg_cols, int num_segs, int items_per_warp) {\n",
                   "    deep_gemm::smxx_clean_logits_impl<", t, ", deep_gemm::CleanMode(", static_cast<int>(mode), "), ",
                   kNumThreads, ">(\n",
                   "        logits, row_stride, num_rows, num_cols, ks, ends, ends_stride_b, ends_stride_t, next_n,\n",
                   "        seg_cols, num_segs, items_per_warp);\n",
                   "}\n");
    }

    static std::vector<KernelSpec> enumerate(const ArchSpec&) {
        std::vector<KernelSpec> specs;
        for (const bool bf16: {false, true}) {
            for (const auto mode: {CleanMode::kRagged, CleanMode::kPaged2D, CleanMode::kPaged1D}) {
                const CleanLogitsConfig c{bf16, mode};
                specs.push_back({"clean_logits", c.symbol(), c.generate(),
                                 cat(bf16 ? "bf16" : "fp32", " mode=", static_cast<int>(mode)), kNumThreads, 0,
                                 {"STG.E.128"}});
            }
        }
        return specs;
    }
};

// `logits`: [num_rows, >= num_cols] with a 16-byte-aligned row stride. For kRagged `ks`/`ends` are [num_rows];
// for the paged modes `ends` is the context-length tensor (2-D [B, next_n] or 1-D [B]).
inline void launch_clean_logits(const torch::Tensor& logits, int num_rows, int num_cols, CleanMode mode,
                                const int* ks, const int* ends, int64_t ends_stride_b, int64_t ends_stride_t,
                                int next_n) {
    if (num_rows == 0 or num_cols == 0)
        return;
    const CleanLogitsConfig config{logits.scalar_type() == torch::kBFloat16, mode};
    const auto device = logits.get_device();
    const c10::cuda::CUDAGuard guard(logits.device());
    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyCleanLogits, static_cast<uint64_t>(config.mode) * 2 + (config.bf16 ? 1 : 0), device,
        [&]() { return config.generate(); }, [&]() { return config.symbol(); });
    const int num_sms = jit::DeviceRuntime::get().get_num_sms();
    const int blocks_per_sm = std::max(1, jit::DeviceRuntime::props(device).maxThreadsPerMultiProcessor /
                                              CleanLogitsConfig::kNumThreads);
    constexpr int kWarpsPerBlock = CleanLogitsConfig::kNumThreads / 32;

    // Segments of `kSegmentBytes` (a multiple of 16 bytes, so only a span's ends are unaligned)
    const int seg_cols = CleanLogitsConfig::kSegmentBytes / static_cast<int>(logits.element_size());
    const int num_segs = (num_cols + seg_cols - 1) / seg_cols;
    // As many items per warp as needed for one wave of resident blocks to cover everything
    const int64_t total_items = static_cast<int64_t>(num_rows) * num_segs;
    const int64_t max_warps = static_cast<int64_t>(num_sms) * blocks_per_sm * kWarpsPerBlock;
    const int64_t items_per_warp = (total_items + max_warps - 1) / max_warps;
    const int64_t items_per_block = items_per_warp * kWarpsPerBlock;
    DG_HOST_ASSERT(items_per_warp < (1ll << 31));

    const auto launch = jit::LaunchConfig::on(at::cuda::getCurrentCUDAStream(device).stream(), device,
                                              CleanLogitsConfig::kNumThreads, 0,
                                              (total_items + items_per_block - 1) / items_per_block);
    runtime->launch(launch, logits.data_ptr(), static_cast<long long>(logits.stride(0)), num_rows, num_cols, ks, ends,
                    static_cast<long long>(ends_stride_b), static_cast<long long>(ends_stride_t), next_n, seg_cols,
                    num_segs, static_cast<int>(items_per_warp));
}

} // namespace deep_gemm
