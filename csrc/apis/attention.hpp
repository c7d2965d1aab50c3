#pragma once

// The indexer ("lightning indexer") APIs: argument checks, output allocation and dispatch (CONTRACT.md §2).

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>

#include "../utils/checks.hpp"
#include "../jit_kernels/impls/smxx_clean_logits.hpp"

namespace deep_gemm::attention {

// Internal entry points of the clean-logits kernel (used by tests; the public calls use it through `clean_logits`)
inline void clean_logits_ragged(const torch::Tensor& logits, const torch::Tensor& ks, const torch::Tensor& ke) {
    const ArgCheck c{"clean_logits"};
    c.cuda(logits, "logits");
    c.dtype_one_of(logits, "logits", {torch::kFloat, torch::kBFloat16});
    c.dim(logits, "logits", 2, "[S, N]");
    c.last_dim_contiguous(logits, "logits");
    DG_CHECK(logits.stride(0) * logits.element_size() % 16 == 0 and
             reinterpret_cast<uintptr_t>(logits.data_ptr()) % 16 == 0,
             "clean_logits: `logits` rows must start 16-byte aligned; got row stride ", logits.stride(0));
    const int num_rows = static_cast<int>(logits.size(0));
    for (const auto& [t, name]: {std::pair{ks, "ks"}, std::pair{ke, "ke"}}) {
        c.on_device(t, name, logits.device());
        c.dtype(t, name, torch::kInt);
        c.dim(t, name, 1, "[S]");
        c.size(t, name, 0, num_rows, "S, the number of logits rows");
        c.contiguous(t, name);
    }
    launch_clean_logits(logits, num_rows, static_cast<int>(logits.size(1)), CleanMode::kRagged,
                        ks.data_ptr<int>(), ke.data_ptr<int>(), 0, 0, 1);
}

inline void clean_logits_paged(const torch::Tensor& logits, const torch::Tensor& context_lens, int next_n) {
    const ArgCheck c{"clean_logits"};
    c.cuda(logits, "logits");
    c.dtype_one_of(logits, "logits", {torch::kFloat, torch::kBFloat16});
    c.dim(logits, "logits", 2, "[B * next_n, max_context_len]");
    c.last_dim_contiguous(logits, "logits");
    DG_CHECK(next_n >= 1, "clean_logits: `next_n` must be >= 1; got ", next_n);
    c.on_device(context_lens, "context_lens", logits.device());
    c.dtype(context_lens, "context_lens", torch::kInt);
    DG_CHECK(context_lens.dim() == 1 or (context_lens.dim() == 2 and context_lens.size(1) == next_n),
             "clean_logits: `context_lens` must be [B] or [B, next_n]; got ", describe(context_lens));
    DG_CHECK(logits.size(0) == context_lens.size(0) * next_n, "clean_logits: `logits`.shape[0] must be B * next_n = ",
             context_lens.size(0) * next_n, "; got ", describe(logits));
    const bool is_2d = context_lens.dim() == 2;
    launch_clean_logits(logits, static_cast<int>(logits.size(0)), static_cast<int>(logits.size(1)),
                        is_2d ? CleanMode::kPaged2D : CleanMode::kPaged1D, nullptr, context_lens.data_ptr<int>(),
                        context_lens.stride(0), is_2d ? context_lens.stride(1) : 0, next_n);
}

// ==== ragged: fp8_mqa_logits, fp8_fp4_mqa_logits ====
inline void register_ragged_apis(pybind11::module_&) {}
// ==== end ragged ====

// ==== paged: get_paged_mqa_logits_metadata, fp8_paged_mqa_logits, fp8_fp4_paged_mqa_logits ====
inline void register_paged_apis(pybind11::module_&) {}
// ==== end paged ====

inline void register_apis(pybind11::module_& m) {
    namespace py = pybind11;
    register_ragged_apis(m);
    register_paged_apis(m);
    m.def("clean_logits_ragged", &clean_logits_ragged, py::arg("logits"), py::arg("ks"), py::arg("ke"));
    m.def("clean_logits_paged", &clean_logits_paged, py::arg("logits"), py::arg("context_lens"), py::arg("next_n"));
}

} // namespace deep_gemm::attention
