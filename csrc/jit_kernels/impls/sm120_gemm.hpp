#pragma once

// Host side of the SM120 GEMMs (`deep_gemm/include/deep_gemm/impls/sm120_gemm.cuh`): the kernel config (its key, its
// generated source, every config the heuristics can pick), the launch (the GemmParams struct, split-K workspace and
// counters), and the once-per-config cross-check of the sm_120-only MMA forms against the Promote twin.
//
// NOTES: the warm path builds no string: the kernel is found by a packed integer key, the environment is seen
// through `DgEnvWatch` (one pass over `environ`, no getenv), and the plan is integer arithmetic.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/python.h>

#include <map>
#include <mutex>
#include <utility>

#include "../../../deep_gemm/include/deep_gemm/common/gemm_params.cuh"
#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../../utils/env_watch.hpp"
#include "../heuristics/sm120_gemm.hpp"
#include "../registry.hpp"
#include "sm120_mma_cross_check.hpp"

namespace deep_gemm {

static_assert(sizeof(GemmParams) == 23 * 8 + 12 * 4, "GemmParams layout (host and device share it)");

// The compile-time shape of one GEMM kernel (`sm120_gemm_impl`'s template arguments). Scale formats (float32 or packed
// UE8M0, B per row or per 128 rows), the output dtype, C and head splits are runtime flags of the launch.
struct GemmConfig {
    int block_m = 128, block_n = 128, warps_m = 2, warps_n = 4, num_stages = 3;
    int kind = kGemmKindNormal;
    int type_a = kGemmDtypeFp8, type_b = kGemmDtypeFp8;
    int sf_gran_k_a = 128, sf_gran_k_b = 128;
    bool hw_scales = false;     // the block-scaled MMA fed the real UE8M0 scales (sm_120a/121a)
    bool fast_mma = false;      // Promote through the block-scaled MMA with unit scales (sm_120a/121a)
    bool bmk_name = false;      // einsum 'bmk,bnk->mn': upstream's timer looks for 'bmn_bnk_mn_gemm_impl'

    bool bf16() const { return type_a == kGemmDtypeBf16; }
    int num_threads() const { return warps_m * warps_n * 32; }
    // As the kernel lays a stage out: HW stages one packed int per scale row, Promote one float per granule
    int stage_bytes() const {
        return GemmHeuristics::stage_bytes(block_m, block_n, type_a, type_b,
                                           bf16() ? 0 : (hw_scales ? 1 : 128 / sf_gran_k_a),
                                           bf16() ? 0 : (hw_scales ? 1 : 128 / sf_gran_k_b));
    }
    int smem_bytes() const { return num_stages * stage_bytes(); }

    // Kernel names carry upstream's timer substrings: 'gemm_' for FP8/FP4, 'bf16_gemm' for BF16
    std::string symbol() const {
        if (bmk_name)
            return "sm120_bmn_bnk_mn_gemm_impl";
        if (bf16())
            return "sm120_bf16_gemm_kernel";
        return type_a == kGemmDtypeFp4 or type_b == kGemmDtypeFp4 ? "sm120_fp8_fp4_gemm_1d1d_kernel"
                                                                  : "sm120_fp8_gemm_1d1d_kernel";
    }

    uint64_t key() const {
        uint64_t k = 0;
        const auto put = [&](uint64_t v, int bits) { k = (k << bits) | (v & ((1ull << bits) - 1)); };
        put(block_m / 16, 4), put(block_n / 16, 4), put(warps_m, 3), put(warps_n, 3), put(num_stages, 4);
        put(kind, 3), put(type_a, 2), put(type_b, 2), put(sf_gran_k_a == 32 ? 0 : 1, 1);
        put(sf_gran_k_b == 32 ? 0 : 1, 1), put(hw_scales, 1), put(fast_mma, 1), put(bmk_name, 1);
        return k;
    }

    std::string generate() const {
        const auto b = [](bool v) { return v ? "true" : "false"; };
        return cat("#include <deep_gemm/impls/sm120_gemm.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", num_threads(), ", 1) ", symbol(),
                   "(const __grid_constant__ deep_gemm::GemmParams p) {\n",
                   "    deep_gemm::sm120_gemm_impl<", block_m, ", ", block_n, ", ", warps_m, ", ", warps_n, ", ",
                   num_stages, ", ", kind, ", ", type_a, ", ", type_b, ", ", sf_gran_k_a, ", ", sf_gran_k_b, ", ",
                   b(hw_scales), ", ", b(fast_mma), ">(p);\n}\n");
    }

    std::string describe() const {
        static const char* kinds[] = {"normal", "m-contiguous", "m-psum", "m-masked", "k-grouped"};
        static const char* types[] = {"fp8", "fp4", "bf16"};
        std::string s = cat(kinds[kind], " ", types[type_a], "x", types[type_b], " ", block_m, "x", block_n,
                            " warps=", warps_m, "x", warps_n, " stages=", num_stages);
        if (not bf16())
            s += cat(" sf_k=", sf_gran_k_a, "/", sf_gran_k_b, hw_scales ? " hw" : (fast_mma ? " promote(block_scaled)"
                                                                                              : " promote"));
        return s;
    }

    std::vector<std::string> expected_sass(const ArchSpec& arch) const {
        if (bf16())
            return {"HMMA.16816.F32.BF16"};
        if (not arch.is_sm120_family())
            return {};
        if (hw_scales)
            return {"QMMA.SF.16832.F32.E4M3.E4M3.E8"};
        return {fast_mma ? "QMMA.SF.16832" : "QMMA.16832"};
    }

    // Every config the heuristics can pick for `arch` (CI compiles them all for sm_120a and sm_121a)
    static std::vector<KernelSpec> enumerate(const ArchSpec& arch);
};

// --- kernel lookup, knobs -------------------------------------------------------------------------------------------

// The `DG_*` knobs a GEMM call depends on, re-read only when the environment's `DG_*` entries change
struct GemmKnobs {
    uint64_t generation = 0;
    bool fp8_plain = false;         // DG_SM120_FP8_MMA=plain
    bool print_configs = false;     // DG_PRINT_CONFIGS
    bool poison = false;            // DG_DEBUG_POISON_OUTPUTS
    bool check_forced = false;      // DG_SM120_MMA_CHECK=force / force-fail

    static const GemmKnobs& get() {
        static thread_local GemmKnobs knobs;
        const uint64_t gen = DgEnvWatch::get().generation();
        if (gen != knobs.generation) {
            const auto form = get_env("DG_SM120_FP8_MMA");
            DG_CHECK(form.empty() or form == "plain" or form == "block_scaled",
                     "environment variable DG_SM120_FP8_MMA must be 'plain' or 'block_scaled'; got '", form, "'");
            const auto mode = mma_check_mode();
            knobs.fp8_plain = form == "plain";
            knobs.print_configs = get_env_flag("DG_PRINT_CONFIGS");
            knobs.poison = get_env_flag("DG_DEBUG_POISON_OUTPUTS");
            knobs.check_forced = mode == MmaCheckMode::kForce or mode == MmaCheckMode::kForceFail;
            knobs.generation = gen;
        }
        return knobs;
    }
};

// Split-K arrival counters per (device, stream), zeroed once; every kernel leaves them zero. Not used under CUDA-graph
// capture (a replay may overlap eager calls on the capture stream): there the counters come with the workspace.
class SplitCounterPool {
public:
    static constexpr int64_t kNumCounters = 1 << 16;

    static uint32_t* get(int device, cudaStream_t stream) {
        static SplitCounterPool pool;
        std::lock_guard<std::mutex> lock(pool.mutex);
        const auto key = std::make_pair(device, reinterpret_cast<uintptr_t>(stream));
        if (const auto it = pool.buffers.find(key); it != pool.buffers.end())
            return it->second;
        void* ptr = nullptr;
        DG_RUNTIME_CHECK(cudaMalloc(&ptr, kNumCounters * 4) == cudaSuccess,
                         "deep_gemm: cudaMalloc of the split-K counters failed");
        C10_CUDA_CHECK(cudaMemsetAsync(ptr, 0, kNumCounters * 4, stream));
        return pool.buffers[key] = static_cast<uint32_t*>(ptr);
    }

private:
    std::mutex mutex;
    std::map<std::pair<int, uintptr_t>, uint32_t*> buffers;
};

// Launch `config` with `p` (operands filled in by the caller; workspace and counters added here for K splits)
inline void launch_gemm_with(const GemmConfig& config, const GemmTiling& tiling, GemmParams p, int device,
                             cudaStream_t stream) {
    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyGemm, config.key(), device, [&]() { return config.generate(); }, [&]() { return config.symbol(); });
    torch::Tensor workspace;
    p.num_splits = tiling.num_splits;
    if (tiling.num_splits > 1) {
        DG_HOST_ASSERT(config.kind == kGemmKindNormal);
        const int64_t m_tiles = (p.m + config.block_m - 1) / config.block_m;
        const int64_t n_tiles = (p.n + config.block_n - 1) / config.block_n;
        const int64_t tiles = m_tiles * n_tiles * p.num_groups;
        const int64_t slot_floats = static_cast<int64_t>(config.num_threads()) * (config.block_m / config.warps_m) *
                                    (config.block_n / config.warps_n) / 32;
        const int64_t ws_bytes = tiles * tiling.num_splits * slot_floats * 4;
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        DG_RUNTIME_CHECK(cudaStreamIsCapturing(stream, &capture) == cudaSuccess, "deep_gemm: cudaStreamIsCapturing failed");
        const bool pooled = capture == cudaStreamCaptureStatusNone and tiles <= SplitCounterPool::kNumCounters;
        const int64_t counter_bytes = pooled ? 0 : (tiles * 4 + 255) / 256 * 256;
        workspace = torch::empty({counter_bytes + ws_bytes},
                                 torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA, device));
        auto* base = static_cast<uint8_t*>(workspace.data_ptr());
        p.workspace = reinterpret_cast<float*>(base + counter_bytes);
        if (pooled) {
            p.counters = SplitCounterPool::get(device, stream);
        } else {
            p.counters = reinterpret_cast<unsigned*>(base);
            C10_CUDA_CHECK(cudaMemsetAsync(p.counters, 0, tiles * 4, stream));
        }
    }
    const auto launch =
        jit::LaunchConfig::on(stream, device, config.num_threads(), config.smem_bytes(), tiling.grid);
    runtime->launch(launch, p);
}

} // namespace deep_gemm

namespace deep_gemm {

// The operand / scale-granule combinations the GEMM APIs accept (apis/gemm.hpp checks them): FP8 x FP8 with 128 or
// 32 K granules, FP8 x FP4 (MXFP4 experts), FP4 x FP8 (FP4 activations, FP8 weights) and FP4 x FP4 with 32-wide FP4
// granules, and BF16
struct GemmOperandCombo {
    int type_a, type_b, gran_k_a, gran_k_b;
};

inline std::vector<GemmOperandCombo> gemm_operand_combos() {
    return {{kGemmDtypeFp8, kGemmDtypeFp8, 128, 128}, {kGemmDtypeFp8, kGemmDtypeFp8, 32, 32},
            {kGemmDtypeFp8, kGemmDtypeFp8, 128, 32}, {kGemmDtypeFp8, kGemmDtypeFp4, 128, 32},
            {kGemmDtypeFp8, kGemmDtypeFp4, 32, 32}, {kGemmDtypeFp4, kGemmDtypeFp8, 32, 128},
            {kGemmDtypeFp4, kGemmDtypeFp8, 32, 32}, {kGemmDtypeFp4, kGemmDtypeFp4, 32, 32},
            {kGemmDtypeBf16, kGemmDtypeBf16, 128, 128}};
}

inline bool gemm_combo_allowed(int type_a, int type_b, int gran_k_a, int gran_k_b) {
    for (const auto& c: gemm_operand_combos())
        if (c.type_a == type_a and c.type_b == type_b and (type_a == kGemmDtypeBf16 or
                                                           (c.gran_k_a == gran_k_a and c.gran_k_b == gran_k_b)))
            return true;
    return false;
}

inline std::vector<KernelSpec> GemmConfig::enumerate(const ArchSpec& arch) {
    std::vector<KernelSpec> specs;
    const auto add = [&](GemmConfig c) {
        GemmShape s;
        s.type_a = c.type_a, s.type_b = c.type_b, s.sf_gran_k_a = c.sf_gran_k_a, s.sf_gran_k_b = c.sf_gran_k_b;
        s.m = c.block_m, s.n = 4096, s.k = 4096;
        const auto t = GemmHeuristics::plan(arch, s);
        c.warps_m = t.warps_m, c.warps_n = t.warps_n, c.num_stages = t.num_stages;
        specs.push_back({c.bf16() ? "bf16_gemm" : "fp8_gemm", c.symbol(), c.generate(), c.describe(), c.num_threads(),
                         c.smem_bytes(), c.expected_sass(arch)});
    };
    // The MMA forms a target can run: on sm_120a/121a the HW-scale and the full-rate Promote forms, and the plain
    // Promote form (DG_SM120_FP8_MMA=plain, or a failed cross-check); elsewhere the plain form
    std::vector<std::pair<bool, bool>> forms = {{false, false}};
    if (arch.block_scaled_mma)
        forms.push_back({true, false}), forms.push_back({false, true});
    for (const auto& combo: gemm_operand_combos()) {
        const bool bf16 = combo.type_a == kGemmDtypeBf16;
        const bool fp8_128 = combo.type_b == kGemmDtypeFp8 and combo.gran_k_a == 128 and combo.gran_k_b == 128;
        const bool expert = combo.type_a == kGemmDtypeFp8 and combo.type_b == kGemmDtypeFp4 and combo.gran_k_a == 128;
        const bool fp4_a = combo.type_a == kGemmDtypeFp4 and combo.gran_k_b == (combo.type_b == kGemmDtypeFp4 ? 32 : 128);
        const int max_m = GemmHeuristics::max_block_m(combo.gran_k_a, combo.gran_k_b);
        for (int kind = kGemmKindNormal; kind <= kGemmKindKGrouped; ++ kind) {
            // Grouped layouts serve FP8 x FP8 (128 granules), MXFP4 experts, FP4 activations (x FP4 or x FP8 with 128
            // granules) and BF16; k-grouped FP8 (128 or 32) and BF16
            const bool m_grouped = kind >= kGemmKindMContiguous and kind <= kGemmKindMMasked;
            if (m_grouped and not (bf16 or fp8_128 or expert or fp4_a))
                continue;
            if (kind == kGemmKindKGrouped and not (bf16 or (combo.type_a == kGemmDtypeFp8 and combo.type_b ==
                                                           kGemmDtypeFp8 and combo.gran_k_a == combo.gran_k_b)))
                continue;
            for (int block_m = 16; block_m <= max_m; block_m *= 2) {
                for (const auto& [hw, fast]: bf16 ? std::vector<std::pair<bool, bool>>{{false, false}} : forms) {
                    GemmConfig c;
                    c.block_m = block_m, c.block_n = 128, c.kind = kind;
                    c.type_a = combo.type_a, c.type_b = combo.type_b;
                    c.sf_gran_k_a = bf16 ? 128 : combo.gran_k_a, c.sf_gran_k_b = bf16 ? 128 : combo.gran_k_b;
                    c.hw_scales = hw, c.fast_mma = fast;
                    add(c);
                    if (bf16 and kind == kGemmKindNormal)
                        c.bmk_name = true, add(c);
                }
            }
        }
    }
    return specs;
}

} // namespace deep_gemm
