#pragma once

// NOTES: an `ArchSpec` is everything the heuristics may depend on. Configs are chosen from the spec, never from
// the live device, so SM120 configs can be planned (and compiled, and tested) on any GPU or on no GPU at all.

#include <mutex>
#include <string>
#include <unordered_map>

#include "../../jit/device_runtime.hpp"
#include "../../utils/exception.hpp"

namespace deep_gemm {

struct ArchSpec {
    std::string target;         // compile target, e.g. "sm_120a"
    int major = 0, minor = 0;   // the architecture the configs are planned for
    int smem_capacity = 0;      // opt-in dynamic shared memory per block, bytes
    int max_threads_per_sm = 0;
    int num_sms = 0;
    bool fp8_mma = false;       // `mma.sync ... e4m3` exists (sm_89+; emulated on sm_90)
    bool block_scaled_mma = false;  // `kind::mxf8f6f4` / `kind::mxf4nvf4` block-scaled `mma.sync` (sm_120a/121a)

    bool is_sm120_family() const { return major == 12; }
};

// The spec of an explicit compile target (compile-only builds, CI)
inline ArchSpec arch_spec_for_target(const std::string& target) {
    ArchSpec spec;
    spec.target = target;
    if (target == "sm_120a" or target == "sm_120f" or target == "sm_120")
        spec.major = 12, spec.minor = 0, spec.smem_capacity = 101376, spec.max_threads_per_sm = 1536, spec.num_sms = 188;
    else if (target == "sm_121a" or target == "sm_121f" or target == "sm_121")
        spec.major = 12, spec.minor = 1, spec.smem_capacity = 101376, spec.max_threads_per_sm = 1536, spec.num_sms = 48;
    else if (target == "sm_89")
        spec.major = 8, spec.minor = 9, spec.smem_capacity = 101376, spec.max_threads_per_sm = 1536, spec.num_sms = 128;
    else if (target == "sm_90a" or target == "sm_90")
        spec.major = 9, spec.minor = 0, spec.smem_capacity = 232448, spec.max_threads_per_sm = 2048, spec.num_sms = 132;
    else if (target == "sm_100a" or target == "sm_100f" or target == "sm_103a")
        spec.major = 10, spec.minor = 0, spec.smem_capacity = 232448, spec.max_threads_per_sm = 2048, spec.num_sms = 148;
    else if (target == "sm_80" or target == "sm_86" or target == "sm_87")
        spec.major = 8, spec.minor = target[4] - '0', spec.smem_capacity = target == "sm_80" ? 166912 : 101376,
        spec.max_threads_per_sm = target == "sm_80" ? 2048 : 1536, spec.num_sms = 108;
    else
        DG_CHECK(false, "deep_gemm: unsupported compile target '", target,
                 "'; expected one of sm_120a, sm_121a, sm_120f, sm_89, sm_90a, sm_100a, sm_80, sm_86");
    spec.fp8_mma = spec.major * 10 + spec.minor >= 89;
    spec.block_scaled_mma = spec.major == 12 and target.back() != '0' and target.back() != '1';
    return spec;
}

// SM120 mode: keep the target's instructions, but plan shared memory and occupancy as sm_120 would
inline ArchSpec with_sm120_planning(ArchSpec spec) {
    if (spec.major != 12) {
        const auto sm120 = arch_spec_for_target("sm_120a");
        spec.smem_capacity = sm120.smem_capacity;
        spec.max_threads_per_sm = sm120.max_threads_per_sm;
    }
    return spec;
}

// The sm_120a/sm_121a-only MMA forms, shared by every indexer family. Chosen wherever the target has them unless
// `DG_SM120_FP8_MMA=plain` / `DG_SM120_FP4_MMA=portable`; until validated on real SM120 hardware each is
// cross-checked once per configuration against its portable twin (impls/sm120_mma_cross_check.hpp).
inline bool choose_block_scaled_fp8_mma(const ArchSpec& arch) {
    const auto& form = DgKnobs::get().fp8_mma;
    DG_CHECK(form.empty() or form == "plain" or form == "block_scaled",
             "environment variable DG_SM120_FP8_MMA must be 'plain' or 'block_scaled'; got '", form, "'");
    return arch.block_scaled_mma and form != "plain";
}

inline bool choose_native_fp4_mma(const ArchSpec& arch) {
    const auto& form = DgKnobs::get().fp4_mma;
    DG_CHECK(form.empty() or form == "portable" or form == "native",
             "environment variable DG_SM120_FP4_MMA must be 'portable' or 'native'; got '", form, "'");
    return arch.block_scaled_mma and form != "portable";
}

// The spec used for a call on the current device: the device's own, or sm_120's in SM120 mode. Either way the
// code is compiled for the device at hand, and the grid uses the device's SM count (or `set_num_sms`).
inline ArchSpec current_arch_spec() {
    auto& rt = jit::DeviceRuntime::get();
    const auto [major, minor] = rt.capability();
    const auto target = jit::compile_target_for(major, minor);
    ArchSpec spec = arch_spec_for_target(target);
    if (jit::DeviceRuntime::sm120_mode())
        spec = with_sm120_planning(spec);
    // Never plan beyond what the device itself allows
    spec.smem_capacity = std::min<int>(spec.smem_capacity, static_cast<int>(rt.props().sharedMemPerBlockOptin));
    spec.max_threads_per_sm = std::min(spec.max_threads_per_sm, rt.props().maxThreadsPerMultiProcessor);
    spec.num_sms = rt.get_num_sms();
    return spec;
}

// `current_arch_spec()` per (device, DG_SM120_MODE), computed once: the warm paths read it without querying the
// device. Its `num_sms` is the value at first use; callers that plan grids override it with the live one
// (`set_num_sms` may change it). The reference stays valid (the map's nodes never move).
inline const ArchSpec& cached_arch_spec(int device) {
    static std::mutex mutex;
    static std::unordered_map<int, ArchSpec> cache;
    const int key = device * 2 + (jit::DeviceRuntime::sm120_mode() ? 1 : 0);
    std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = cache.find(key); it != cache.end())
        return it->second;
    return cache.emplace(key, current_arch_spec()).first->second;
}

} // namespace deep_gemm
