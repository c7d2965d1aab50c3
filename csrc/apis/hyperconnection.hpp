#pragma once

// The mHC (manifold-constrained hyper-connection) API: `tf32_hc_prenorm_gemm` (CONTRACT.md §3).

#include <optional>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>

#include "../utils/checks.hpp"
#include "../jit_kernels/impls/sm120_tf32_hc_prenorm_gemm.hpp"

namespace deep_gemm::hyperconnection {

// Validates everything before anything is written, then launches (nothing for M = 0)
inline void hc_prenorm_gemm(const char* fn, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                            const torch::Tensor& sqr_sum, const std::optional<int64_t>& num_splits, bool round_rna) {
    using T = HcPrenormTiling;
    // NOTES: dtypes and shapes first, devices last, so every check but the device one can be exercised on the CPU
    const ArgCheck c{fn};
    for (const auto& [t, name]: {std::pair{a, "a"}, std::pair{b, "b"}, std::pair{d, "d"}, std::pair{sqr_sum, "sqr_sum"}})
        c.defined(t, name);
    c.dtype(a, "a", torch::kBFloat16);
    c.dtype(b, "b", torch::kFloat);
    c.dtype(d, "d", torch::kFloat);
    c.dtype(sqr_sum, "sqr_sum", torch::kFloat);
    c.dim(a, "a", 2, "[M, K]");
    c.dim(b, "b", 2, "[N, K]");
    const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
    c.size(b, "b", 1, k, "K, as `a`.shape[1]");
    DG_CHECK(1 <= n and n <= T::kMaxN, fn, ": `b`.shape[0] (N) must be in [1, ", T::kMaxN, "]; got ", describe(b));
    DG_CHECK(k > 0 and k % T::kBlockK == 0, fn, ": K (`a`.shape[1]) must be a positive multiple of ", T::kBlockK,
             " (any `num_splits` then works); got ", describe(a));
    DG_CHECK(m < (int64_t{1} << 31) and k < (int64_t{1} << 31), fn,
             ": `a` is too large (M must be < 2^31, K < 2^31); got ", describe(a));

    int64_t splits = 1;
    if (num_splits.has_value()) {
        splits = *num_splits;
        // Any count: split i sums the K blocks [floor(i * nb / s), floor((i + 1) * nb / s)) of the nb = K / 64
        // blocks (whole 64-wide blocks, counts differ by at most one); with s > nb some splits get zeros
        DG_CHECK(splits >= 1 and splits <= 65535, fn, ": `num_splits` must be in [1, 65535] or None; got ", splits);
        c.dim(d, "d", 3, "[num_splits, M, N] (num_splits is given)");
        c.size(d, "d", 0, splits, "num_splits");
        c.size(d, "d", 1, m, "M, as `a`.shape[0]");
        c.size(d, "d", 2, n, "N, as `b`.shape[0]");
        c.dim(sqr_sum, "sqr_sum", 2, "[num_splits, M] (num_splits is given)");
        c.size(sqr_sum, "sqr_sum", 0, splits, "num_splits");
        c.size(sqr_sum, "sqr_sum", 1, m, "M, as `a`.shape[0]");
    } else {
        c.dim(d, "d", 2, "[M, N] (num_splits is None)");
        c.size(d, "d", 0, m, "M, as `a`.shape[0]");
        c.size(d, "d", 1, n, "N, as `b`.shape[0]");
        c.dim(sqr_sum, "sqr_sum", 1, "[M] (num_splits is None)");
        c.size(sqr_sum, "sqr_sum", 0, m, "M, as `a`.shape[0]");
    }

    c.last_dim_contiguous(a, "a");
    c.last_dim_contiguous(b, "b");
    DG_CHECK(m <= 1 or (a.stride(0) >= k and a.stride(0) % 8 == 0), fn,
             ": `a` rows must be 16-byte aligned and not overlap (row stride a multiple of 8 elements, >= K); got "
             "row stride ", a.stride(0), " for ", describe(a));
    DG_CHECK(n <= 1 or (b.stride(0) >= k and b.stride(0) % 4 == 0), fn,
             ": `b` rows must be 16-byte aligned and not overlap (row stride a multiple of 4 elements, >= K); got "
             "row stride ", b.stride(0), " for ", describe(b));
    DG_CHECK(m == 0 or reinterpret_cast<uintptr_t>(a.data_ptr()) % 16 == 0, fn,
             ": `a` must start at a 16-byte-aligned address (a view at an element offset is not supported)");
    DG_CHECK(reinterpret_cast<uintptr_t>(b.data_ptr()) % 16 == 0, fn,
             ": `b` must start at a 16-byte-aligned address (a view at an element offset is not supported)");
    c.contiguous(d, "d");
    c.contiguous(sqr_sum, "sqr_sum");
    c.cuda(a, "a");
    for (const auto& [t, name]: {std::pair{b, "b"}, std::pair{d, "d"}, std::pair{sqr_sum, "sqr_sum"}}) {
        DG_CHECK(t.device() == a.device(), fn, ": `", name, "` must be on ", a.device().str(), " (where `a` is); got ",
                 describe(t));
    }

    const auto [major, minor] = jit::DeviceRuntime::capability(a.get_device());
    DG_RUNTIME_CHECK(major * 10 + minor >= 80, fn, ": needs a GPU of sm_80 or newer (TF32 mma.sync, cp.async); "
                     "running on ", jit::DeviceRuntime::device_description(a.get_device()));
    launch_tf32_hc_prenorm_gemm(a, b, d, sqr_sum, static_cast<int>(splits), round_rna);
}

inline void register_apis(pybind11::module_& m) {
    namespace py = pybind11;
    m.def("tf32_hc_prenorm_gemm",
          [](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d, const torch::Tensor& sqr_sum,
             const std::optional<int64_t>& num_splits) {
              hc_prenorm_gemm("tf32_hc_prenorm_gemm", a, b, d, sqr_sum, num_splits, kHcDefaultRoundRNA);
          },
          py::arg("a"), py::arg("b"), py::arg("d"), py::arg("sqr_sum"), py::arg("num_splits") = py::none(),
          "d = a @ b.T (TF32 operands, FP32 accumulation) and sqr_sum = (a.float() ** 2).sum(-1); K must be a multiple "
          "of 64. With `num_splits` = s (any s >= 1), split i covers the 64-wide K blocks [floor(i*nb/s), "
          "floor((i+1)*nb/s)) of nb = K/64 and writes d[i], sqr_sum[i] (zeros where it covers none); d.sum(0) and "
          "sqr_sum.sum(0) are the full results");
    // Internal: the same kernel with an explicit TF32 rounding of `b` ('truncate' or 'rna'), for tests
    m.def("_tf32_hc_prenorm_gemm_rounding",
          [](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d, const torch::Tensor& sqr_sum,
             const std::optional<int64_t>& num_splits, const std::string& b_rounding) {
              DG_CHECK(b_rounding == "truncate" or b_rounding == "rna", "_tf32_hc_prenorm_gemm_rounding: ",
                       "`b_rounding` must be 'truncate' or 'rna'; got '", b_rounding, "'");
              hc_prenorm_gemm("_tf32_hc_prenorm_gemm_rounding", a, b, d, sqr_sum, num_splits, b_rounding == "rna");
          },
          py::arg("a"), py::arg("b"), py::arg("d"), py::arg("sqr_sum"), py::arg("num_splits") = py::none(),
          py::arg("b_rounding") = "truncate");
    m.def("_tf32_hc_prenorm_gemm_default_rounding", []() { return std::string(kHcDefaultRoundRNA ? "rna" : "truncate"); });
    // Internal: the host plan for a shape on a compile target (its SM count, or `num_sms`), for CPU tests of the
    // heuristic. No GPU needed.
    m.def("_tf32_hc_prenorm_gemm_plan",
          [](const std::string& target, int64_t m, int64_t n, int64_t k, const std::optional<int64_t>& num_splits,
             const std::optional<int64_t>& num_sms) {
              constexpr const char* fn = "_tf32_hc_prenorm_gemm_plan";
              using T = HcPrenormTiling;
              auto arch = arch_spec_for_target(target);
              const int64_t splits = num_splits.value_or(1);
              DG_CHECK(m >= 1 and m <= (1 << 24), fn, ": `m` must be in [1, 2^24]; got ", m);
              DG_CHECK(n >= 1 and n <= T::kMaxN, fn, ": `n` must be in [1, ", T::kMaxN, "]; got ", n);
              DG_CHECK(splits >= 1 and splits <= 65535, fn, ": `num_splits` must be in [1, 65535]; got ", splits);
              DG_CHECK(k >= T::kBlockK and k <= (1 << 24) and k % T::kBlockK == 0, fn,
                       ": `k` must be a positive multiple of ", T::kBlockK, ", at most 2^24; got ", k);
              if (num_sms.has_value()) {
                  DG_CHECK(*num_sms >= 1 and *num_sms <= 1024, fn, ": `num_sms` must be in [1, 1024]; got ", *num_sms);
                  arch.num_sms = static_cast<int>(*num_sms);
              }
              const auto plan = get_hc_prenorm_plan(arch, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                                                    static_cast<int>(splits));
              pybind11::dict out;
              out["num_sms"] = arch.num_sms, out["num_m_tiles"] = plan.num_m_tiles;
              out["num_int_splits"] = plan.num_int_splits, out["group_size"] = plan.group_size;
              out["smem_bytes"] = plan.smem_bytes;
              // Each caller's split's K blocks [first, last): the partition the kernel computes on the device
              pybind11::list blocks;
              for (int64_t u = 0; u < splits; ++u) {
                  const auto [first, last] = hc_user_split_blocks(k / T::kBlockK, splits, u);
                  blocks.append(pybind11::make_tuple(first, last));
              }
              out["user_split_blocks"] = blocks;
              return out;
          },
          py::arg("target"), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("num_splits") = py::none(),
          py::arg("num_sms") = py::none());
}

} // namespace deep_gemm::hyperconnection
