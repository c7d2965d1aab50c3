#pragma once

// NOTES: argument validation shared by every public function. Messages follow one shape:
//   "<function>: `<argument>` must be <expected>; got <given>"

#include <torch/python.h>
#include <string>
#include <vector>

#include "exception.hpp"
#include "format.hpp"

namespace deep_gemm {

inline std::string dtype_name(const at::ScalarType t) {
    switch (t) {
        case at::kFloat: return "torch.float32";
        case at::kBFloat16: return "torch.bfloat16";
        case at::kHalf: return "torch.float16";
        case at::kDouble: return "torch.float64";
        case at::kInt: return "torch.int32";
        case at::kLong: return "torch.int64";
        case at::kChar: return "torch.int8";
        case at::kByte: return "torch.uint8";
        case at::kBool: return "torch.bool";
        case at::kFloat8_e4m3fn: return "torch.float8_e4m3fn";
        case at::kFloat8_e5m2: return "torch.float8_e5m2";
        default: return cat("torch.", c10::toString(t));
    }
}

inline std::string shape_of(const torch::Tensor& t) {
    return cat(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()));
}

inline std::string describe(const torch::Tensor& t) {
    return cat("a ", t.device().str(), " tensor of dtype ", dtype_name(t.scalar_type()), " and shape ", shape_of(t));
}

struct ArgCheck {
    const char* fn;

    void defined(const torch::Tensor& t, const char* arg) const {
        DG_TYPE_CHECK(t.defined(), fn, ": `", arg, "` must be a tensor; got an undefined tensor");
    }

    void on_device(const torch::Tensor& t, const char* arg, const c10::Device& device) const {
        defined(t, arg);
        DG_CHECK(t.device() == device, fn, ": `", arg, "` must be on ", device.str(), " (where `q` is); got ", describe(t));
    }

    void cuda(const torch::Tensor& t, const char* arg) const {
        defined(t, arg);
        DG_CHECK(t.is_cuda(), fn, ": `", arg, "` must be a CUDA tensor; got ", describe(t));
    }

    void dtype(const torch::Tensor& t, const char* arg, at::ScalarType expected) const {
        DG_TYPE_CHECK(t.scalar_type() == expected, fn, ": `", arg, "` must have dtype ", dtype_name(expected), "; got ",
                      describe(t));
    }

    void dtype_one_of(const torch::Tensor& t, const char* arg, std::initializer_list<at::ScalarType> expected) const {
        for (const auto e: expected)
            if (t.scalar_type() == e)
                return;
        std::string names;
        for (const auto e: expected)
            names += (names.empty() ? "" : " or ") + dtype_name(e);
        DG_TYPE_CHECK(false, fn, ": `", arg, "` must have dtype ", names, "; got ", describe(t));
    }

    void dim(const torch::Tensor& t, const char* arg, int64_t ndim, const char* layout) const {
        DG_CHECK(t.dim() == ndim, fn, ": `", arg, "` must be ", ndim, "-D ", layout, "; got ", describe(t));
    }

    void size(const torch::Tensor& t, const char* arg, int64_t d, int64_t expected, const char* what) const {
        DG_CHECK(t.size(d) == expected, fn, ": `", arg, "`.shape[", d, "] must be ", expected, " (", what, "); got ",
                 describe(t));
    }

    void contiguous(const torch::Tensor& t, const char* arg) const {
        DG_CHECK(t.is_contiguous(), fn, ": `", arg, "` must be contiguous; got strides ",
                 std::vector<int64_t>(t.strides().begin(), t.strides().end()), " for ", describe(t));
    }

    void last_dim_contiguous(const torch::Tensor& t, const char* arg) const {
        DG_CHECK(t.dim() == 0 or t.size(-1) <= 1 or t.stride(-1) == 1, fn, ": `", arg,
                 "` must have a contiguous last dimension (stride 1); got strides ",
                 std::vector<int64_t>(t.strides().begin(), t.strides().end()), " for ", describe(t));
    }

    template <typename T>
    void one_of(const T value, const char* arg, std::initializer_list<T> allowed, const char* what) const {
        for (const auto a: allowed)
            if (value == a)
                return;
        DG_CHECK(false, fn, ": ", what, " `", arg, "` must be one of ", std::vector<T>(allowed), "; got ", value);
    }
};

} // namespace deep_gemm
