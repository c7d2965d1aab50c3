#pragma once

// Host side of the ragged (prefill) FP8 / FP4 MQA logits kernel (`deep_gemm/include/deep_gemm/impls/sm120_fp8_mqa_logits.cuh`):
// source generation, the compile-only enumeration, the one-time MMA-form cross-checks (block-scaled FP8 against
// plain FP8, native FP4 against portable FP4), and the launch.
//
// NOTES: the warm path (docs/DEVELOPING.md, "one warm-path policy"): the plan per thread and `DG_*` generation
// (`RaggedLogitsPlan`), the compiled kernel per (config, device) under a packed integer key (no source generation or
// string hashing per call).

#include <Python.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>
#include <map>
#include <mutex>
#include <torch/python.h>
#include <unordered_map>
#include <vector>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../heuristics/sm120_mqa_logits.hpp"
#include "../registry.hpp"
#include "sm120_mma_cross_check.hpp"

namespace deep_gemm {

struct RaggedMqaLogitsConfig {
    RaggedMqaLogitsPlan plan;

    std::string symbol() const { return plan.fp4 ? "sm120_fp4_mqa_logits" : "sm120_fp8_mqa_logits"; }

    std::string generate() const {
        const auto& p = plan;
        return cat("#include <deep_gemm/impls/sm120_fp8_mqa_logits.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", p.num_threads(), ", 1) ", symbol(), "(\n",
                   "        const deep_gemm::uint8_t* q, const int* q_sf, const deep_gemm::uint8_t* k,\n",
                   "        const void* kv_scale, const void* weights, long long weights_stride, int weights_bf16,\n",
                   "        const int* ks, const int* ke, void* logits, long long logits_stride, int logits_bf16,\n",
                   "        int num_q, int num_k, int max_seqlen_k, int num_splits, int clean_logits) {\n",
                   "    deep_gemm::sm120_fp8_mqa_logits_impl<", p.num_heads, ", ", p.head_dim, ", ",
                   p.fp4 ? "true" : "false", ", ", p.block_scaled ? "true" : "false", ", ", p.num_warps, ", ",
                   p.block_k, ", ", p.num_stages, ">(\n",
                   "        q, q_sf, k, kv_scale, weights, weights_stride, weights_bf16, ks, ke, logits, logits_stride,\n",
                   "        logits_bf16, num_q, num_k, max_seqlen_k, num_splits, clean_logits);\n",
                   "}\n");
    }

    // Every template argument, packed (the runtime cache's key)
    uint64_t key() const {
        const auto& p = plan;
        return static_cast<uint64_t>(p.num_heads) | static_cast<uint64_t>(p.head_dim) << 8 |
               static_cast<uint64_t>(p.fp4) << 16 | static_cast<uint64_t>(p.block_scaled) << 17 |
               static_cast<uint64_t>(p.num_warps) << 18 | static_cast<uint64_t>(p.block_k) << 26 |
               static_cast<uint64_t>(p.num_stages) << 38;
    }

    std::string description() const {
        const auto& p = plan;
        const char* form = p.fp4 ? (p.block_scaled ? "native" : "portable") : (p.block_scaled ? "block_scaled" : "plain");
        return cat(p.fp4 ? "FP4 " : "", "H=", p.num_heads, " D=", p.head_dim, " mma=", form, " warps=", p.num_warps,
                   " block_k=", p.block_k, " stages=", p.num_stages);
    }

    // Every config the heuristics can pick: each (H, D), with the plain form and, where the target has it,
    // the block-scaled form (the default there; the plain form is the env override and the fallback).
    // STG.E.128: the fused clean's 16-byte -inf stores
    static std::vector<KernelSpec> enumerate(const ArchSpec& arch) {
        std::vector<KernelSpec> specs;
        for (const int h: kRaggedHeads) {
            for (const int d: kRaggedHeadDims) {
                for (const bool block_scaled: {false, true}) {
                    if (block_scaled and not arch.block_scaled_mma)
                        continue;
                    const RaggedMqaLogitsConfig c{plan_ragged_mqa_logits(arch, h, d, block_scaled)};
                    std::vector<std::string> sass = {"LDSM", "LDGSTS", "STG.E.128"};
                    if (arch.is_sm120_family())
                        sass.push_back(block_scaled ? "QMMA.SF.16832.F32.E4M3.E4M3" : "QMMA.16832.F32.E4M3.E4M3");
                    else if (arch.major == 9)
                        sass.push_back("HMMA");     // sm_90 emulates FP8 mma.sync with F16 HMMA
                    specs.push_back({"mqa_logits", c.symbol(), c.generate(), c.description(), c.plan.num_threads(),
                                     c.plan.smem_bytes(), sass});
                }
            }
        }
        // FP4: each (H, D) with the portable form and, where the target has it, the native form (the default there)
        for (const int h: kRaggedHeads) {
            for (const int d: kRaggedFp4HeadDims) {
                for (const bool native: {false, true}) {
                    if (native and not arch.block_scaled_mma)
                        continue;
                    const RaggedMqaLogitsConfig c{plan_ragged_mqa_logits(arch, h, d, native, true)};
                    std::vector<std::string> sass = {"LDSM", "LDGSTS", "STG.E.128"};
                    sass.push_back(native ? "OMMA.SF.16864" : "HMMA.16816.F32.BF16");
                    specs.push_back({"mqa_logits", c.symbol(), c.generate(), c.description(), c.plan.num_threads(),
                                     c.plan.smem_bytes(), sass});
                }
            }
        }
        return specs;
    }
};

// The raw arguments of one launch
struct RaggedMqaLogitsArgs {
    const void* q;
    const int* q_sf;            // FP4: int32 [S, H] packed UE8M0; FP8: nullptr
    const void* k;
    const void* kv_scale;       // FP8: float32 [N]; FP4: int32 [N] packed UE8M0
    const void* weights;
    int64_t weights_stride;
    bool weights_bf16;
    const int* ks;
    const int* ke;
    void* logits;
    int64_t logits_stride;
    bool logits_bf16;
    int num_q, num_k, max_seqlen_k;
    // -inf into every column of [0, num_k) outside each row's range, in the same launch (needs max_seqlen_k == 0
    // and 16-byte aligned logits rows)
    bool clean_logits;
};

inline void launch_ragged_mqa_logits_with(const RaggedMqaLogitsConfig& config, const ArchSpec& arch,
                                          const RaggedMqaLogitsArgs& a, int device, cudaStream_t stream) {
    if (a.num_q == 0 or a.num_k == 0)
        return;
    // The fused clean writes 16-byte vectors from each row's start, over the full uncompressed width
    DG_HOST_ASSERT(not a.clean_logits or
                   (a.max_seqlen_k == 0 and reinterpret_cast<uintptr_t>(a.logits) % 16 == 0 and
                    a.logits_stride * (a.logits_bf16 ? 2 : 4) % 16 == 0));
    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyRaggedLogits, config.key(), device, [&]() { return config.generate(); }, [&]() { return config.symbol(); });
    const auto& p = config.plan;
    const int num_splits = p.num_splits(arch, a.num_q, a.num_k);
    const int num_tiles = (a.num_q + p.block_q() - 1) / p.block_q();
    const auto launch = jit::LaunchConfig::on(stream, device, p.num_threads(), p.smem_bytes(),
                                              static_cast<long long>(num_tiles) * num_splits);
    runtime->launch(launch, static_cast<const uint8_t*>(a.q), a.q_sf, static_cast<const uint8_t*>(a.k), a.kv_scale,
                    a.weights, static_cast<long long>(a.weights_stride), static_cast<int>(a.weights_bf16), a.ks,
                    a.ke, a.logits, static_cast<long long>(a.logits_stride), static_cast<int>(a.logits_bf16),
                    a.num_q, a.num_k, a.max_seqlen_k, num_splits, static_cast<int>(a.clean_logits));
}

// --- The one-time cross-check of the block-scaled FP8 form against its plain twin (docs/HARDWARE.md §4) -------------
// Runs candidate and twin on a small random input (fixed seed, local generator: the caller's RNG is untouched)
inline MmaCheckResult cross_check_ragged_mqa_logits(const RaggedMqaLogitsConfig& candidate, const ArchSpec& arch,
                                                    int device, cudaStream_t stream, bool inject_fault) {
    const auto& p = candidate.plan;
    RaggedMqaLogitsConfig twin = candidate;
    twin.plan.block_scaled = false;
    const int s = 2 * p.block_q() + 3, n = 3 * p.block_k + 17;
    auto gen = at::detail::createCPUGenerator(0x5eed);
    const auto cpu = torch::TensorOptions().dtype(torch::kFloat);
    const auto dev = torch::TensorOptions().device(torch::kCUDA, device);
    const auto q = torch::randn({s, p.num_heads, p.head_dim}, gen, cpu).to(dev.dtype(torch::kFloat8_e4m3fn));
    const auto k = torch::randn({n, p.head_dim}, gen, cpu).to(dev.dtype(torch::kFloat8_e4m3fn));
    const auto scale = (torch::rand({n}, gen, cpu) + 0.5).to(dev.dtype(torch::kFloat));
    const auto w = torch::randn({s, p.num_heads}, gen, cpu).to(dev.dtype(torch::kFloat));
    const auto ks = torch::randint(0, n / 2, {s}, gen, cpu.dtype(torch::kLong)).to(dev.dtype(torch::kInt));
    const auto ke = torch::randint(n / 2, n + 1, {s}, gen, cpu.dtype(torch::kLong)).to(dev.dtype(torch::kInt));
    std::vector<torch::Tensor> outs;
    for (const RaggedMqaLogitsConfig* c: {&candidate, static_cast<const RaggedMqaLogitsConfig*>(&twin)}) {
        // Outside each row's range the output stays 0 in both runs, so the whole tensor can be compared
        auto out = torch::zeros({s, n}, dev.dtype(torch::kFloat));
        RaggedMqaLogitsArgs a{q.data_ptr(), nullptr, k.data_ptr(), scale.data_ptr<float>(), w.data_ptr(), w.stride(0), false,
                              ks.data_ptr<int>(), ke.data_ptr<int>(), out.data_ptr(), out.stride(0), false, s, n, 0,
                              false};
        launch_ragged_mqa_logits_with(*c, arch, a, device, stream);
        outs.push_back(out);
    }
    return compare_mma_outputs(outs[0], outs[1], inject_fault);
}

// The FP4 twin check: native against portable, on random packed e2m1 bytes with UE8M0 scales near 2^0
inline MmaCheckResult cross_check_ragged_fp4_mqa_logits(const RaggedMqaLogitsConfig& candidate, const ArchSpec& arch,
                                                        int device, cudaStream_t stream, bool inject_fault) {
    const auto& p = candidate.plan;
    RaggedMqaLogitsConfig twin = candidate;
    twin.plan.block_scaled = false;
    const int s = 2 * p.block_q() + 3, n = 3 * p.block_k + 17, half = p.head_dim / 2;
    auto gen = at::detail::createCPUGenerator(0x5eed4);
    const auto cpu = torch::TensorOptions().dtype(torch::kLong);
    const auto dev = torch::TensorOptions().device(torch::kCUDA, device);
    // Packed int32 scales from four random UE8M0 bytes in [124, 130] (for D = 64 the upper two are padding)
    const auto scales = [&](std::vector<int64_t> shape) {
        auto bytes_shape = shape;
        bytes_shape.push_back(4);
        return torch::randint(124, 131, bytes_shape, gen, cpu).to(torch::kByte).contiguous().view(torch::kInt)
            .squeeze(-1).contiguous().to(dev.dtype(torch::kInt));
    };
    const auto q = torch::randint(-128, 128, {s, p.num_heads, half}, gen, cpu).to(dev.dtype(torch::kChar));
    const auto q_sf = scales({s, p.num_heads});
    const auto k = torch::randint(-128, 128, {n, half}, gen, cpu).to(dev.dtype(torch::kChar));
    const auto k_sf = scales({n});
    const auto w = torch::randn({s, p.num_heads}, gen, cpu.dtype(torch::kFloat)).to(dev.dtype(torch::kFloat));
    const auto ks = torch::randint(0, n / 2, {s}, gen, cpu).to(dev.dtype(torch::kInt));
    const auto ke = torch::randint(n / 2, n + 1, {s}, gen, cpu).to(dev.dtype(torch::kInt));
    std::vector<torch::Tensor> outs;
    for (const RaggedMqaLogitsConfig* c: {&candidate, static_cast<const RaggedMqaLogitsConfig*>(&twin)}) {
        auto out = torch::zeros({s, n}, dev.dtype(torch::kFloat));
        RaggedMqaLogitsArgs a{q.data_ptr(), q_sf.data_ptr<int>(), k.data_ptr(), k_sf.data_ptr(), w.data_ptr(),
                              w.stride(0), false, ks.data_ptr<int>(), ke.data_ptr<int>(), out.data_ptr(), out.stride(0),
                              false, s, n, 0, false};
        launch_ragged_mqa_logits_with(*c, arch, a, device, stream);
        outs.push_back(out);
    }
    // NOTES: the products are exact in both forms, but they are summed in different orders (one k64 MMA against
    // four bf16 k16 MMAs), so the forms agree to a few FP32 roundings of the partial sums, not bitwise
    return compare_mma_outputs(outs[0], outs[1], inject_fault, 1e-5);
}

// The form to launch with: the plan's, unless its cross-check fails (or cannot run yet, during graph capture)
inline bool resolve_block_scaled(const RaggedMqaLogitsConfig& config, const ArchSpec& arch, int device,
                                 cudaStream_t stream) {
    if (config.plan.fp4)
        return MmaCrossCheck::get().resolve("fp4_mqa_logits", config.description(), config.plan.block_scaled,
                                            kFp4NativeValidatedOnHardware, device, stream, [&](bool inject_fault) {
            return cross_check_ragged_fp4_mqa_logits(config, arch, device, stream, inject_fault);
        });
    return MmaCrossCheck::get().resolve("fp8_mqa_logits", config.description(), config.plan.block_scaled,
                                        kFp8BlockScaledValidatedOnHardware, device, stream, [&](bool inject_fault) {
        return cross_check_ragged_mqa_logits(config, arch, device, stream, inject_fault);
    });
}

// The warm-path plan of a (device, FP8 or FP4, H, D) under the current `DG_*` environment (the one warm-path policy:
// a `WarmPlanCache`, utils/env_watch.hpp): the arch spec, the candidate config with the sm_120a/121a-only MMA form
// where the target has it, and whether DG_PRINT_CONFIGS is on
struct RaggedLogitsPlan {
    const ArchSpec* arch = nullptr;     // `cached_arch_spec` (stable for the life of the process)
    bool settled = false;               // `config.plan.block_scaled` is final (no cross-check involved)
    bool print = false;                 // DG_PRINT_CONFIGS
    RaggedMqaLogitsConfig config;       // the final config if `settled`, else the candidate to resolve
    mutable ResolvedMmaForm resolved;   // not `settled`: the cross-check's decision, once made

    static const RaggedLogitsPlan& find(int device, int num_heads, int head_dim, bool fp4) {
        static thread_local WarmPlanCache<RaggedLogitsPlan> plans;
        const uint64_t key = static_cast<uint64_t>(device) | static_cast<uint64_t>(fp4) << 16 |
                             static_cast<uint64_t>(num_heads) << 24 | static_cast<uint64_t>(head_dim) << 32;
        return plans.find(key, [&]() {
            RaggedLogitsPlan p;
            p.arch = &cached_arch_spec(device);
            const bool sm120_form = fp4 ? choose_native_fp4_mma(*p.arch) : choose_block_scaled_fp8_mma(*p.arch);
            p.config = RaggedMqaLogitsConfig{plan_ragged_mqa_logits(*p.arch, num_heads, head_dim, sm120_form, fp4)};
            const bool validated = fp4 ? kFp4NativeValidatedOnHardware : kFp8BlockScaledValidatedOnHardware;
            p.settled = settled_mma_form(sm120_form, validated).has_value();
            p.print = DgKnobs::get().print_configs;
            return p;
        });
    }
};

// The public path: plan, pick the MMA form (cross-checked once), launch on the current stream
inline void launch_ragged_mqa_logits(const RaggedMqaLogitsArgs& args, int num_heads, int head_dim, bool fp4,
                                     int device) {
    if (args.num_q == 0 or args.num_k == 0)
        return;
    // A copy: the cross-check's warning may run Python code
    const RaggedLogitsPlan plan = RaggedLogitsPlan::find(device, num_heads, head_dim, fp4);
    // The cached spec, with the SM count of now (`set_num_sms` may change it between calls)
    ArchSpec arch = *plan.arch;
    arch.num_sms = jit::DeviceRuntime::get().get_num_sms();
    RaggedMqaLogitsConfig config = plan.config;
    const auto stream = at::cuda::getCurrentCUDAStream(device).stream();
    if (not plan.settled) {
        config.plan.block_scaled = ResolvedMmaForm::decide(plan.resolved, stream, [&]() {
            return resolve_block_scaled(config, arch, device, stream);
        }, [&](const ResolvedMmaForm& r) { RaggedLogitsPlan::find(device, num_heads, head_dim, fp4).resolved = r; });
    }
    if (plan.print) {
        static std::mutex print_mutex;
        static std::map<std::string, bool> printed;
        std::lock_guard<std::mutex> lock(print_mutex);
        if (not printed[config.description()]) {
            printed[config.description()] = true;
            std::fprintf(stderr, "deep_gemm: mqa_logits config: %s, smem %d B\n", config.description().c_str(),
                         config.plan.smem_bytes());
        }
    }
    launch_ragged_mqa_logits_with(config, arch, args, device, stream);
}

} // namespace deep_gemm
