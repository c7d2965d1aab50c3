#pragma once

// NOTES: every kernel family lists each configuration its heuristics can choose for an architecture. The
// compile-only entry point (CI, cache warming) builds exactly these, so "compiled in CI" means "can be picked".

#include <string>
#include <vector>

#include "heuristics/common.hpp"

namespace deep_gemm {

// Family tags of `jit::KernelCache::lookup_or_build_keyed` (one per config struct whose `key()` packs it)
enum KernelFamily : uint32_t {
    kFamilyPagedMetadata = 1,
    kFamilyPagedLogits = 2,
    kFamilyRaggedLogits = 3,
    kFamilyCleanLogits = 4,
    kFamilyGemm = 5,
    kFamilyLayout = 6,
    kFamilyHcPrenorm = 7,
};

struct KernelSpec {
    std::string family;                     // e.g. "paged_mqa_logits"
    std::string symbol;                     // the `extern "C"` kernel name
    std::string source;                     // the generated translation unit
    std::string description;                // the config, human-readable
    int num_threads = 0;
    int dynamic_smem = 0;                   // bytes, as launched
    std::vector<std::string> expected_sass; // instruction substrings the SASS must contain
};

} // namespace deep_gemm
