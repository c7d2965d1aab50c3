#pragma once

// NOTES: every user-facing failure names the function, the argument, what was expected and what was given.
// `DGValueError` / `DGTypeError` become Python `ValueError` / `TypeError`; everything else `RuntimeError`.

#include <stdexcept>
#include <string>

#include "format.hpp"

namespace deep_gemm {

class DGValueError : public std::invalid_argument {
public:
    explicit DGValueError(const std::string& msg) : std::invalid_argument(msg) {}
};

class DGTypeError : public std::invalid_argument {
public:
    explicit DGTypeError(const std::string& msg) : std::invalid_argument(msg) {}
};

class DGRuntimeError : public std::runtime_error {
public:
    explicit DGRuntimeError(const std::string& msg) : std::runtime_error(msg) {}
};

} // namespace deep_gemm

// A broken internal invariant (a bug of ours, not of the caller)
#define DG_HOST_ASSERT(cond) \
    do { \
        if (not (cond)) \
            throw deep_gemm::DGRuntimeError(deep_gemm::cat("deep_gemm internal error: assertion `", #cond, \
                                                           "` failed at ", __FILE__, ":", __LINE__)); \
    } while (0)

// A user-facing check: `DG_CHECK(cond, "fn_name: `arg` must be ...; got ", x)`
#define DG_CHECK(cond, ...) \
    do { if (not (cond)) throw deep_gemm::DGValueError(deep_gemm::cat(__VA_ARGS__)); } while (0)

#define DG_TYPE_CHECK(cond, ...) \
    do { if (not (cond)) throw deep_gemm::DGTypeError(deep_gemm::cat(__VA_ARGS__)); } while (0)

#define DG_RUNTIME_CHECK(cond, ...) \
    do { if (not (cond)) throw deep_gemm::DGRuntimeError(deep_gemm::cat(__VA_ARGS__)); } while (0)
