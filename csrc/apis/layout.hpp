#pragma once

// The scale-factor layout kernels' entry points. The public functions are Python (deep_gemm/utils/layout.py: argument
// parsing, the CPU path, output allocation); these launch the kernels into a caller-allocated output and re-check what
// the kernels rely on, naming the public function `fn` in every error.

#include <optional>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>

#include "../utils/checks.hpp"
#include "../jit_kernels/impls/smxx_layout.hpp"

namespace deep_gemm::layout {

// `out` must be exactly the MN-major TMA-aligned layout: strides ((G:) aligned_mn * out_k, 1, aligned_mn)
inline void check_mn_major_out(const ArgCheck& c, const torch::Tensor& out, int64_t aligned_mn) {
    const int64_t out_k = out.size(-1);
    const bool ok = out.stride(-2) == 1 and out.stride(-1) == aligned_mn and
                    (out.dim() == 2 or out.stride(0) == aligned_mn * out_k);
    DG_CHECK(ok, c.fn, ": `out` must have strides ((G:) ", aligned_mn * out_k, ", 1, ", aligned_mn,
             ") (MN-major, TMA-aligned); got ", std::vector<int64_t>(out.strides().begin(), out.strides().end()));
    DG_CHECK(reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0, c.fn, ": `out` must be 16-byte aligned");
    // The kernel writes the padding rows too: the storage must hold all `aligned_mn` rows of every column
    const int64_t groups = out.dim() == 3 ? out.size(0) : 1;
    DG_CHECK(out.storage().nbytes() >= (out.storage_offset() + groups * aligned_mn * out_k) * out.element_size(), c.fn,
             ": `out` storage must hold all ", aligned_mn, " (aligned) rows of every column");
}

inline void sf_mn_major_layout(const std::string& fn, const torch::Tensor& sf, const torch::Tensor& out, bool pack,
                               int64_t gran_mn, const std::optional<torch::Tensor>& psum_layout,
                               int64_t psum_alignment) {
    const ArgCheck c{fn.c_str()};
    c.defined(sf, "sf");
    c.defined(out, "out");
    DG_CHECK(sf.dim() == 2 or sf.dim() == 3, fn, ": `sf` must be [(G,) MN, K]; got ", describe(sf));
    c.dim(out, "out", sf.dim(), "like `sf`");
    if (pack) {
        c.dtype(sf, "sf", torch::kFloat);
        c.dtype(out, "out", torch::kInt);
    } else {
        const auto e = sf.element_size();
        DG_TYPE_CHECK(e == 1 or e == 2 or e == 4 or e == 8, fn, ": `sf` elements must be 1, 2, 4 or 8 bytes; got ",
                      describe(sf));
        c.dtype(out, "out", sf.scalar_type());
    }
    DG_CHECK(1 <= gran_mn and gran_mn < (int64_t{1} << 31), fn, ": the MN granularity must be in [1, 2^31); got ",
             gran_mn);
    const int64_t mn = out.size(-2), in_k = sf.size(-1);
    c.size(sf, "sf", sf.dim() - 2, (mn + gran_mn - 1) / gran_mn, "ceil(MN / gran_mn)");
    c.size(out, "out", out.dim() - 1, pack ? (in_k + 3) / 4 : in_k, pack ? "ceil(K / 4)" : "K");
    if (sf.dim() == 3) {
        c.size(out, "out", 0, sf.size(0), "the group count of `sf`");
        DG_CHECK(sf.size(0) <= 65535, fn, ": at most 65535 groups; got ", describe(sf));
    }
    const int64_t per_store = 16 / out.element_size(), aligned_mn = (mn + per_store - 1) / per_store * per_store;
    // (the grid has one CTA row per 32 columns: at most 65535 of them)
    DG_CHECK(mn < (int64_t{1} << 30) and in_k <= int64_t{65535} * SfMnMajorConfig::kMaxTileK, fn,
             ": `sf` is too large; got ", describe(sf));
    if (mn > 0)
        check_mn_major_out(c, out, aligned_mn);
    c.cuda(sf, "sf");
    DG_CHECK(out.device() == sf.device(), fn, ": `out` must be on ", sf.device().str(), "; got ", describe(out));

    const int* ends = nullptr;
    int num_psum_groups = 0;
    if (psum_layout.has_value()) {
        const auto& p = *psum_layout;
        c.dtype(p, "psum_layout", torch::kInt);
        c.dim(p, "psum_layout", 1, "[num_groups] (cumulative group ends)");
        c.contiguous(p, "psum_layout");
        DG_CHECK(p.device() == sf.device(), fn, ": `psum_layout` must be on ", sf.device().str(), "; got ", describe(p));
        DG_CHECK(sf.dim() == 2, fn, ": `psum_layout` needs a 2-D `sf` [M, K]; got ", describe(sf));
        DG_CHECK(psum_alignment >= 1, fn, ": the psum alignment must be >= 1; got ", psum_alignment);
        ends = p.data_ptr<int>();
        num_psum_groups = static_cast<int>(p.numel());
    }
    launch_sf_mn_major(sf, out, pack, static_cast<int>(gran_mn), ends, num_psum_groups,
                       static_cast<int>(psum_alignment));
}

inline void sf_k_grouped_pack(const std::string& fn, const torch::Tensor& sf, const torch::Tensor& out,
                              const torch::Tensor& grouped_layout, int64_t gran_k, int64_t k_alignment,
                              bool use_psum_layout) {
    const ArgCheck c{fn.c_str()};
    c.defined(sf, "sf");
    c.defined(out, "out");
    c.defined(grouped_layout, "grouped_layout");
    c.dtype(sf, "sf", torch::kFloat);
    c.dtype(out, "out", torch::kInt);
    c.dtype(grouped_layout, "grouped_layout", torch::kInt);
    c.dim(sf, "sf", 2, "[sum of ceil(k / gran_k) over groups, MN]");
    c.dim(out, "out", 2, "[packed rows, MN]");
    c.dim(grouped_layout, "grouped_layout", 1, "[num_groups]");
    c.contiguous(grouped_layout, "grouped_layout");
    c.size(out, "out", 1, sf.size(1), "MN, as `sf`.shape[1]");
    DG_CHECK(grouped_layout.numel() <= SfKGroupedPackConfig::kMaxGroups, fn, ": at most ",
             SfKGroupedPackConfig::kMaxGroups, " groups; got ", describe(grouped_layout));
    DG_CHECK(gran_k >= 1 and k_alignment >= 1, fn, ": `gran_k` and `k_alignment` must be >= 1; got ", gran_k, " and ",
             k_alignment);
    const int64_t mn = out.size(1), aligned_mn = (mn + 3) / 4 * 4;
    DG_CHECK(sf.size(0) < (int64_t{1} << 31) and out.size(0) < (int64_t{1} << 31) and mn < (1 << 30),
             fn, ": `sf` is too large; got ", describe(sf));
    DG_CHECK(out.stride(0) == aligned_mn and out.stride(1) == 1, fn, ": `out` must have strides (", aligned_mn,
             ", 1); got ", std::vector<int64_t>(out.strides().begin(), out.strides().end()));
    DG_CHECK(reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0, fn, ": `out` must be 16-byte aligned");
    DG_CHECK(out.storage().nbytes() >= (out.storage_offset() + out.size(0) * aligned_mn) * 4, fn,
             ": `out` storage must hold all ", aligned_mn, " (aligned) columns of every row");
    c.cuda(sf, "sf");
    for (const auto& [t, name]: {std::pair{out, "out"}, std::pair{grouped_layout, "grouped_layout"}})
        DG_CHECK(t.device() == sf.device(), fn, ": `", name, "` must be on ", sf.device().str(), "; got ", describe(t));
    launch_sf_k_grouped_pack(sf, out, grouped_layout.data_ptr<int>(), static_cast<int>(grouped_layout.numel()),
                             static_cast<int>(gran_k), static_cast<int>(k_alignment), use_psum_layout);
}

inline void register_apis(pybind11::module_& m) {
    namespace py = pybind11;
    m.def("sf_mn_major_layout", &sf_mn_major_layout, py::arg("fn"), py::arg("sf"), py::arg("out"), py::arg("pack"),
          py::arg("gran_mn"), py::arg("psum_layout") = std::nullopt, py::arg("psum_alignment") = 1);
    m.def("sf_k_grouped_pack", &sf_k_grouped_pack, py::arg("fn"), py::arg("sf"), py::arg("out"),
          py::arg("grouped_layout"), py::arg("gran_k"), py::arg("k_alignment"), py::arg("use_psum_layout"));
}

} // namespace deep_gemm::layout
