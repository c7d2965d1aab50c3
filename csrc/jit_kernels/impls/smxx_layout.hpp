#pragma once

// Host side of the scale-factor layout kernels (`deep_gemm/include/deep_gemm/impls/smxx_layout.cuh`, where the layouts
// and each thread's work are described). Kernel names carry upstream's profiler substrings: `transpose` for the
// MN-major copy, `pack_fp32_into_ue8m0` for both packs (and neither contains the other's, nor `gemm`).

#include <algorithm>
#include <c10/cuda/CUDAGuard.h>
#include <torch/python.h>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../registry.hpp"

namespace deep_gemm {

// `in [(G,) rows, k]` -> MN-major `out [(G,) mn, out_k]`: a bitwise copy (transpose) or the float32 -> UE8M0 pack
struct SfMnMajorConfig {
    int elem_bytes = 4;         // 1, 2, 4 or 8 (4 in pack mode)
    bool pack = false;
    bool read_along_mn = false; // the input's mn stride is 1
    static constexpr int kNumThreads = 256, kTileMN = 128, kMaxTileK = 32;

    std::string symbol() const { return pack ? "smxx_mn_major_pack_fp32_into_ue8m0" : "smxx_mn_major_transpose"; }

    uint64_t key() const { return static_cast<uint64_t>(elem_bytes) * 4 + (pack ? 2 : 0) + (read_along_mn ? 1 : 0); }

    std::string generate() const {
        return cat("#include <deep_gemm/impls/smxx_layout.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", kNumThreads, ") ", symbol(), "(\n",
                   "        const void* in, long long in_stride_g, long long in_stride_mn, long long in_stride_k,\n",
                   "        void* out, long long out_stride_g, int mn, int aligned_mn, int in_k, int gran_mn,\n",
                   "        int tile_k_log2, const int* psum_ends, int num_psum_groups, int psum_alignment) {\n",
                   "    deep_gemm::smxx_sf_mn_major_impl<", elem_bytes, ", ", pack ? "true" : "false", ", ",
                   read_along_mn ? "true" : "false", ", ", kNumThreads, ", ", kTileMN, ", ", kMaxTileK, ">(\n",
                   "        in, in_stride_g, in_stride_mn, in_stride_k, out, out_stride_g, mn, aligned_mn, in_k, gran_mn,\n",
                   "        tile_k_log2, psum_ends, num_psum_groups, psum_alignment);\n",
                   "}\n");
    }

    static std::vector<KernelSpec> enumerate(const ArchSpec&) {
        std::vector<KernelSpec> specs;
        for (const bool pack: {false, true}) {
            for (const int elem_bytes: {1, 2, 4, 8}) {
                if (pack and elem_bytes != 4)
                    continue;
                for (const bool along_mn: {false, true}) {
                    const SfMnMajorConfig c{elem_bytes, pack, along_mn};
                    specs.push_back({"layout", c.symbol(), c.generate(),
                                     cat(pack ? "pack" : "transpose", " elem=", elem_bytes, "B read_along=",
                                         along_mn ? "mn" : "k"), kNumThreads, 0, {"STG.E.128"}});
                }
            }
        }
        return specs;
    }
};

// k-grouped float32 scales `[sum_g r_g, mn]` -> packed int32 `[num_out_rows, mn]`, each group packed on its own
struct SfKGroupedPackConfig {
    bool psum = false;
    bool vec_load = false;      // 16-byte loads: mn stride 1, 16-byte aligned base and row stride
    static constexpr int kNumThreads = 256;

    std::string symbol() const { return "smxx_k_grouped_pack_fp32_into_ue8m0"; }

    uint64_t key() const { return 64 + (psum ? 2 : 0) + (vec_load ? 1 : 0); }

    std::string generate() const {
        return cat("#include <deep_gemm/impls/smxx_layout.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", kNumThreads, ") ", symbol(), "(\n",
                   "        const float* in, long long in_stride_row, long long in_stride_mn, int num_in_rows, int* out,\n",
                   "        int mn, int aligned_mn, int num_out_rows, const int* layout, int num_groups, int gran_k,\n",
                   "        int k_alignment, int rows_per_block) {\n",
                   "    deep_gemm::smxx_k_grouped_sf_pack_impl<", psum ? "true" : "false", ", ",
                   vec_load ? "true" : "false", ", ", kNumThreads, ">(\n",
                   "        in, in_stride_row, in_stride_mn, num_in_rows, out, mn, aligned_mn, num_out_rows, layout,\n",
                   "        num_groups, gran_k, k_alignment, rows_per_block);\n",
                   "}\n");
    }

    // Dynamic shared memory: two scan scratch arrays, the groups' row counts and two (num_groups + 1)-entry offsets
    static int smem_bytes(int num_groups) {
        return static_cast<int>(2 * kNumThreads / 32 * sizeof(int64_t) + (3 * num_groups + 2) * sizeof(int));
    }

    static std::vector<KernelSpec> enumerate(const ArchSpec&) {
        std::vector<KernelSpec> specs;
        for (const bool psum: {false, true}) {
            for (const bool vec: {false, true}) {
                const SfKGroupedPackConfig c{psum, vec};
                specs.push_back({"layout", c.symbol(), c.generate(),
                                 cat("k-grouped pack", psum ? " psum" : "", vec ? " vec_load" : ""), kNumThreads,
                                 smem_bytes(kMaxGroups), {"STG.E.128"}});
            }
        }
        return specs;
    }

    static constexpr int kMaxGroups = 4096;
};

inline int sf_layout_tile_k_log2(int in_k, bool pack) {
    int log2 = pack ? 2 : 0;
    while ((1 << log2) < in_k and (1 << log2) < SfMnMajorConfig::kMaxTileK)
        ++ log2;
    return log2;
}

// `in`: [(G,) rows, in_k] with `rows == ceil(mn / gran_mn)`; `out`: [(G,) mn, out_k] with strides
// ((G:) aligned_mn * out_k, 1, aligned_mn); `psum_ends` (device, int32) null or `num_psum_groups` cumulative ends
inline void launch_sf_mn_major(const torch::Tensor& in, const torch::Tensor& out, bool pack, int gran_mn,
                               const int* psum_ends, int num_psum_groups, int psum_alignment) {
    const bool batched = in.dim() == 3;
    const int num_groups = batched ? static_cast<int>(in.size(0)) : 1;
    const int mn = static_cast<int>(out.size(-2)), in_k = static_cast<int>(in.size(-1));
    const int aligned_mn = mn == 0 ? 0 : static_cast<int>(out.stride(-1));
    const int64_t out_k = out.size(-1);
    if (num_groups == 0 or mn == 0 or in_k == 0)
        return;
    const SfMnMajorConfig config{static_cast<int>(in.element_size()), pack, in.size(-2) > 1 and in.stride(-2) == 1};
    const int tile_k_log2 = sf_layout_tile_k_log2(in_k, pack);
    const auto device = in.get_device();
    const c10::cuda::CUDAGuard guard(in.device());
    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyLayout, config.key(), device, [&]() { return config.generate(); }, [&]() { return config.symbol(); });
    const auto launch = jit::LaunchConfig::on(at::cuda::getCurrentCUDAStream(device).stream(), device,
                                              SfMnMajorConfig::kNumThreads, 0,
                                              (aligned_mn + SfMnMajorConfig::kTileMN - 1) / SfMnMajorConfig::kTileMN,
                                              (in_k + (1 << tile_k_log2) - 1) >> tile_k_log2, num_groups);
    runtime->launch(launch, in.data_ptr(), static_cast<long long>(batched ? in.stride(0) : 0),
                    static_cast<long long>(in.stride(-2)), static_cast<long long>(in.stride(-1)), out.data_ptr(),
                    static_cast<long long>(batched ? out.stride(0) : aligned_mn * out_k), mn, aligned_mn, in_k, gran_mn,
                    tile_k_log2, psum_ends, num_psum_groups, psum_alignment);
}

// `in`: float32 [num_in_rows, mn]; `out`: int32 [num_out_rows, mn] with row stride aligned_mn; `layout`: device int32
// [num_groups], per-group K or (psum) cumulative ends
inline void launch_sf_k_grouped_pack(const torch::Tensor& in, const torch::Tensor& out, const int* layout,
                                     int num_groups, int gran_k, int k_alignment, bool psum) {
    const int mn = static_cast<int>(out.size(1)), num_out_rows = static_cast<int>(out.size(0));
    if (mn == 0 or num_out_rows == 0)
        return;
    const int aligned_mn = static_cast<int>(out.stride(0));
    const bool vec_load = in.stride(1) == 1 and in.stride(0) % 4 == 0 and
                          reinterpret_cast<uintptr_t>(in.data_ptr()) % 16 == 0;
    const SfKGroupedPackConfig config{psum, vec_load};
    const auto device = in.get_device();
    const c10::cuda::CUDAGuard guard(in.device());
    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyLayout, config.key(), device, [&]() { return config.generate(); }, [&]() { return config.symbol(); });

    constexpr int kColsPerBlock = SfKGroupedPackConfig::kNumThreads * 4;
    const int grid_x = (aligned_mn + kColsPerBlock - 1) / kColsPerBlock;
    // About four CTAs per SM in all; each CTA pays one prefix-sum prologue for its rows
    const int64_t target_blocks = static_cast<int64_t>(jit::DeviceRuntime::get().get_num_sms()) * 4;
    const int rows_per_block = static_cast<int>(std::max<int64_t>(
        1, (static_cast<int64_t>(num_out_rows) * grid_x + target_blocks - 1) / target_blocks));
    const auto launch = jit::LaunchConfig::on(at::cuda::getCurrentCUDAStream(device).stream(), device,
                                              SfKGroupedPackConfig::kNumThreads,
                                              SfKGroupedPackConfig::smem_bytes(num_groups), grid_x,
                                              (num_out_rows + rows_per_block - 1) / rows_per_block);
    runtime->launch(launch, static_cast<const float*>(in.data_ptr()), static_cast<long long>(in.stride(0)),
                    static_cast<long long>(in.stride(1)), static_cast<int>(in.size(0)),
                    static_cast<int*>(out.data_ptr()), mn, aligned_mn, num_out_rows, layout, num_groups, gran_k,
                    k_alignment, rows_per_block);
}

} // namespace deep_gemm
