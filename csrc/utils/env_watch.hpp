#pragma once

// NOTES: the one warm-path policy of every kernel family (docs/DEVELOPING.md): a warm call reads no environment
// variable (`getenv` scans the whole environment), formats no string and hashes none. What a call derives from the
// `DG_*` variables (a kernel config from `DG_SM120_FP8_MMA`, `DG_SM120_MODE`, `DG_SM120_MMA_CHECK`,
// `DG_PRINT_CONFIGS`, ...) is kept until one of those variables changes: tests and benchmarks flip them between
// calls (`os.environ[...] = ...`, `monkeypatch.setenv`), so the change must be seen on the next call.
// `DgEnvWatch::generation()` makes one pass over `environ`, compares every `DG_*` entry, byte for byte, with the copy
// it kept, and returns a new generation number whenever anything differs (an entry added, removed, reordered or
// changed). Comparing contents, not pointers, makes it exact whatever way the environment was changed (setenv, putenv
// of a buffer later rewritten, unsetenv). Derived values are computed with `get_env` on a new generation only, so
// their meaning is exactly that of reading the variables on every call:
//   - `DgKnobs::get()`: the raw knobs, re-read per generation (values are validated where they are used, so an
//     invalid one fails the calls that use it, every time);
//   - `WarmPlanCache`: a family's last few plans (config, MMA form, print flag) per small integer key, dropped on a
//     new generation; a plan that throws while being made is not kept, so every call throws again.
//
// Per thread (`thread_local`): no lock, and a thread's generation only orders its own reads. Measured on the
// 2-core dev machine (g++ -O3, hot loop), the six `get_env` calls of the paged logits call's config block vs one
// generation check: 106 vs 15 ns with 40 variables, 187 vs 28 ns with 90, 487 vs 68 ns with 190; a warm call
// between Python statements finds less of the environment in cache, which favours the single pass further.

#include <cstdint>
#include <cstring>
#include <string>
#include <unistd.h>
#include <utility>

#include "system.hpp"

namespace deep_gemm {

class DgEnvWatch {
    std::string saved;          // every `DG_*` entry ("NAME=value"), each followed by a NUL, in `environ` order
    uint64_t gen = 1;

    static bool is_dg(const char* entry) {
        // Short-circuit: never reads past an entry's terminating NUL
        return entry[0] == 'D' and entry[1] == 'G' and entry[2] == '_';
    }

    void resave() {
        saved.clear();
        if (environ == nullptr)
            return;
        for (char** e = environ; *e != nullptr; ++e)
            if (is_dg(*e))
                saved.append(*e).push_back('\0');
    }

public:
    static DgEnvWatch& get() {
        static thread_local DgEnvWatch watch;
        return watch;
    }

    // Changes whenever the `DG_*` variables did since this thread's previous call (never 0)
    uint64_t generation() {
        const char* s = saved.data();
        const char* const end = s + saved.size();
        bool same = true;
        if (environ != nullptr) {
            for (char** e = environ; *e != nullptr; ++e) {
                const char* entry = *e;
                if (not is_dg(entry))
                    continue;
                // Compare the entry with the next saved one, including the terminating NUL
                const char* p = entry;
                while (s < end and *s == *p and *p != '\0')
                    ++ s, ++ p;
                if (s >= end or *s != *p) {
                    same = false;
                    break;
                }
                ++ s;   // past the saved NUL
            }
        }
        if (same and s == end)
            return gen;
        resave();
        return ++ gen;
    }
};

// The `DG_*` knobs the warm paths read, re-read once per generation of this thread's `DgEnvWatch`
struct DgKnobs {
    uint64_t generation = 0;
    bool sm120_mode = false;        // DG_SM120_MODE
    bool print_configs = false;     // DG_PRINT_CONFIGS
    bool poison_outputs = false;    // DG_DEBUG_POISON_OUTPUTS
    std::string fp8_mma;            // DG_SM120_FP8_MMA
    std::string fp4_mma;            // DG_SM120_FP4_MMA
    std::string mma_check;          // DG_SM120_MMA_CHECK

    static const DgKnobs& get() {
        static thread_local DgKnobs knobs;
        const uint64_t generation = DgEnvWatch::get().generation();
        if (generation != knobs.generation) {
            knobs.sm120_mode = get_env_flag("DG_SM120_MODE");
            knobs.print_configs = get_env_flag("DG_PRINT_CONFIGS");
            knobs.poison_outputs = get_env_flag("DG_DEBUG_POISON_OUTPUTS");
            knobs.fp8_mma = get_env("DG_SM120_FP8_MMA");
            knobs.fp4_mma = get_env("DG_SM120_FP4_MMA");
            knobs.mma_check = get_env("DG_SM120_MMA_CHECK");
            knobs.generation = generation;
        }
        return knobs;
    }
};

// A family's last few warm-path plans, per thread, keyed by a packed integer (device, dtype, shape: what the plan
// depends on besides the `DG_*` environment) and valid for one `DgEnvWatch` generation
template <typename Plan>
class WarmPlanCache {
    static constexpr int kSlots = 8;
    struct Slot {
        uint64_t generation = 0;    // 0: empty
        uint64_t key = 0;
        Plan plan;
    };
    Slot slots[kSlots];
    int next = 0;

public:
    // The plan of `key`, made by `make()` (which may throw: then nothing is kept) when this generation has none. The
    // reference stays valid until this thread's next `find`.
    template <typename Make>
    const Plan& find(const uint64_t key, const Make& make) {
        const uint64_t generation = DgEnvWatch::get().generation();
        for (const auto& slot: slots)
            if (slot.generation == generation and slot.key == key)
                return slot.plan;
        Plan plan = make();
        auto& slot = slots[next];
        next = (next + 1) % kSlots;
        slot.plan = std::move(plan), slot.key = key, slot.generation = generation;
        return slot.plan;
    }
};

} // namespace deep_gemm
