#pragma once

// NOTES: cache keys only need to be collision-resistant in practice, not cryptographic; two independent
// 64-bit FNV-1a streams give a 128-bit key with no dependency.

#include <string>
#include <string_view>

#include "format.hpp"

namespace deep_gemm {

struct Hasher {
    unsigned long long a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;

    void update(std::string_view s) {
        for (const unsigned char c: s) {
            a = (a ^ c) * 0x100000001b3ull;
            b = (b ^ static_cast<unsigned char>(c + 0x5b)) * 0x100000001b3ull;
        }
        // Separate consecutive updates so ("ab", "c") and ("a", "bc") differ
        a = (a ^ 0xff) * 0x100000001b3ull;
        b = (b ^ 0xfe) * 0x100000001b3ull;
    }

    std::string hex() const { return hex64(a) + hex64(b); }
};

inline std::string hash_string(std::string_view s) {
    Hasher h;
    h.update(s);
    return h.hex();
}

} // namespace deep_gemm
