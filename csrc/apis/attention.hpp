#pragma once

// The indexer ("lightning indexer") APIs: argument checks, output allocation and dispatch (CONTRACT.md §2).

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>

#include "../utils/checks.hpp"
#include "../utils/outputs.hpp"
#include "../jit_kernels/impls/smxx_clean_logits.hpp"
#include "../jit_kernels/impls/sm120_fp8_mqa_logits.hpp"
#include "../jit_kernels/impls/sm120_fp8_paged_mqa_logits.hpp"
#include "../jit_kernels/impls/sm120_mma_cross_check.hpp"

namespace deep_gemm::attention {

// Test-only entry points of the standalone clean-logits kernel (`_clean_logits_ragged`, `_clean_logits_paged`; the
// public paged calls use it through `clean_logits`, the public ragged calls write their -inf columns inside the
// logits kernel)
inline void clean_logits_ragged(const torch::Tensor& logits, const torch::Tensor& ks, const torch::Tensor& ke) {
    const ArgCheck c{"_clean_logits_ragged"};
    c.cuda(logits, "logits");
    c.dtype_one_of(logits, "logits", {torch::kFloat, torch::kBFloat16});
    c.dim(logits, "logits", 2, "[S, N]");
    c.last_dim_contiguous(logits, "logits");
    DG_CHECK(logits.stride(0) * logits.element_size() % 16 == 0 and
             reinterpret_cast<uintptr_t>(logits.data_ptr()) % 16 == 0,
             "_clean_logits_ragged: `logits` rows must start 16-byte aligned; got row stride ", logits.stride(0));
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
    const ArgCheck c{"_clean_logits_paged"};
    c.cuda(logits, "logits");
    c.dtype_one_of(logits, "logits", {torch::kFloat, torch::kBFloat16});
    c.dim(logits, "logits", 2, "[B * next_n, max_context_len]");
    c.last_dim_contiguous(logits, "logits");
    DG_CHECK(next_n >= 1, "_clean_logits_paged: `next_n` must be >= 1; got ", next_n);
    c.on_device(context_lens, "context_lens", logits.device());
    c.dtype(context_lens, "context_lens", torch::kInt);
    DG_CHECK(context_lens.dim() == 1 or (context_lens.dim() == 2 and context_lens.size(1) == next_n),
             "_clean_logits_paged: `context_lens` must be [B] or [B, next_n]; got ", describe(context_lens));
    DG_CHECK(logits.size(0) == context_lens.size(0) * next_n,
             "_clean_logits_paged: `logits`.shape[0] must be B * next_n = ", context_lens.size(0) * next_n, "; got ",
             describe(logits));
    const bool is_2d = context_lens.dim() == 2;
    launch_clean_logits(logits, static_cast<int>(logits.size(0)), static_cast<int>(logits.size(1)),
                        is_2d ? CleanMode::kPaged2D : CleanMode::kPaged1D, nullptr, context_lens.data_ptr<int>(),
                        context_lens.stride(0), is_2d ? context_lens.stride(1) : 0, next_n);
}

// ==== ragged: fp8_mqa_logits, fp8_fp4_mqa_logits ====

// Row stride (elements) of the logits buffer: uncompressed align(N + 256, 1024 / elem), compressed
// align(align(max_seqlen_k, 256), 1024 / elem) (CONTRACT.md §2.1)
inline int64_t ragged_logits_row_stride(int64_t width, bool compressed, int64_t elem_size) {
    const auto align_to = [](int64_t x, int64_t a) { return (x + a - 1) / a * a; };
    return compressed ? align_to(align_to(width, 256), 1024 / elem_size) : align_to(width + 256, 1024 / elem_size);
}

// Checks shared by the FP8 and FP4 forms: logits dtype, weights, ranges and output options
inline void check_ragged_common(const ArgCheck& c, const char* fn, const torch::Tensor& weights,
                                const torch::Tensor& ks, const torch::Tensor& ke, bool clean_logits,
                                int64_t max_seqlen_k, at::ScalarType logits_dtype, int64_t num_q, int64_t num_heads,
                                int64_t num_k, const c10::Device& device) {
    DG_TYPE_CHECK(logits_dtype == torch::kFloat or logits_dtype == torch::kBFloat16, fn,
                  ": `logits_dtype` must be torch.float32 or torch.bfloat16; got ", dtype_name(logits_dtype));
    c.on_device(weights, "weights", device);
    if (logits_dtype == torch::kBFloat16)
        c.dtype_one_of(weights, "weights", {torch::kFloat, torch::kBFloat16});
    else
        c.dtype(weights, "weights", torch::kFloat);
    c.dim(weights, "weights", 2, "[S, H]");
    c.size(weights, "weights", 0, num_q, "S, the number of queries in `q`");
    c.size(weights, "weights", 1, num_heads, "H, the number of heads in `q`");
    c.last_dim_contiguous(weights, "weights");
    for (const auto& [t, name]: {std::pair{ks, "cu_seq_len_k_start"}, std::pair{ke, "cu_seq_len_k_end"}}) {
        c.on_device(t, name, device);
        c.dtype(t, name, torch::kInt);
        c.dim(t, name, 1, "[S]");
        c.size(t, name, 0, num_q, "S, the number of queries in `q`");
        c.contiguous(t, name);
    }
    DG_CHECK(max_seqlen_k >= 0, fn, ": `max_seqlen_k` must be >= 0 (0 = uncompressed output); got ", max_seqlen_k);
    DG_CHECK(max_seqlen_k == 0 or not clean_logits, fn, ": `clean_logits=True` requires `max_seqlen_k == 0` (the "
             "compressed layout has no columns to clean); got clean_logits=True, max_seqlen_k=", max_seqlen_k);
    DG_CHECK(num_q < (1ll << 31) and num_k < (1ll << 31) and max_seqlen_k < (1ll << 31), fn,
             ": S, N and max_seqlen_k must each be < 2^31; got S=", num_q, ", N=", num_k, ", max_seqlen_k=", max_seqlen_k);
}

// Allocation and the logits kernel (which also writes the -inf columns when `clean_logits`: one launch), once every
// argument has been checked
inline torch::Tensor run_ragged_mqa_logits(RaggedMqaLogitsArgs args, const torch::Tensor& ks, const torch::Tensor& ke,
                                           bool clean_logits, int64_t max_seqlen_k, at::ScalarType logits_dtype,
                                           int64_t num_q, int64_t num_heads, int64_t head_dim, int64_t num_k, bool fp4,
                                           const c10::Device& device) {
    const c10::cuda::CUDAGuard guard(device);
    const bool compressed = max_seqlen_k > 0;
    const int64_t width = compressed ? max_seqlen_k : num_k;
    const int64_t elem_size = logits_dtype == torch::kBFloat16 ? 2 : 4;
    const int64_t row_stride = ragged_logits_row_stride(width, compressed, elem_size);
    auto buffer = new_output_buffer({num_q, row_stride}, torch::TensorOptions().dtype(logits_dtype).device(device));
    auto logits = buffer.narrow(1, 0, width);

    args.ks = ks.data_ptr<int>(), args.ke = ke.data_ptr<int>();
    args.logits = logits.data_ptr(), args.logits_stride = row_stride, args.logits_bf16 = logits_dtype == torch::kBFloat16;
    args.num_q = static_cast<int>(num_q), args.num_k = static_cast<int>(num_k);
    args.max_seqlen_k = static_cast<int>(max_seqlen_k);
    // NOTES: the row stride is a multiple of 256 elements and the buffer starts 16-byte aligned, as the fused clean
    // needs (check_ragged_common ensures clean_logits implies max_seqlen_k == 0)
    args.clean_logits = clean_logits;
    launch_ragged_mqa_logits(args, static_cast<int>(num_heads), static_cast<int>(head_dim), fp4, device.index());
    return logits;
}

// The FP8 form: q [S, H, D] e4m3, k [N, D] e4m3, kv_scale [N] float32. Everything is checked before anything
// is allocated or launched.
inline torch::Tensor fp8_ragged_mqa_logits(const char* fn, const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& kv_scale, const torch::Tensor& weights,
                                           const torch::Tensor& ks, const torch::Tensor& ke, bool clean_logits,
                                           int64_t max_seqlen_k, at::ScalarType logits_dtype) {
    const ArgCheck c{fn};
    c.cuda(q, "q");
    c.dtype(q, "q", torch::kFloat8_e4m3fn);
    c.dim(q, "q", 3, "[S, H, D]");
    c.contiguous(q, "q");
    const int64_t num_q = q.size(0), num_heads = q.size(1), head_dim = q.size(2);
    c.one_of<int64_t>(num_heads, "q.shape[1]", {8, 16, 32, 64}, "the number of heads");
    c.one_of<int64_t>(head_dim, "q.shape[2]", {32, 64, 128}, "the head dim");
    const auto device = q.device();

    DG_TYPE_CHECK(k.scalar_type() != torch::kChar and k.scalar_type() != torch::kByte, fn, ": FP8 q needs FP8 keys "
                  "`kv` = (float8_e4m3fn [N, D], float32 [N]); got `kv[0]` of dtype ", dtype_name(k.scalar_type()),
                  " (packed FP4 keys need FP4 q = (packed int8 [S, H, D/2], int32 scales [S, H]))");
    c.on_device(k, "kv[0]", device);
    c.dtype(k, "kv[0]", torch::kFloat8_e4m3fn);
    c.dim(k, "kv[0]", 2, "[N, D]");
    c.size(k, "kv[0]", 1, head_dim, "D, the head dim of `q`");
    c.contiguous(k, "kv[0]");
    const int64_t num_k = k.size(0);
    c.on_device(kv_scale, "kv[1]", device);
    c.dtype(kv_scale, "kv[1]", torch::kFloat);
    c.dim(kv_scale, "kv[1]", 1, "[N]");
    c.size(kv_scale, "kv[1]", 0, num_k, "N, the number of keys in `kv[0]`");
    c.contiguous(kv_scale, "kv[1]");

    check_ragged_common(c, fn, weights, ks, ke, clean_logits, max_seqlen_k, logits_dtype, num_q, num_heads, num_k,
                        device);
    DG_CHECK(reinterpret_cast<uintptr_t>(q.data_ptr()) % 16 == 0, fn, ": `q` must start 16-byte aligned; got address ",
             q.data_ptr());
    DG_CHECK(reinterpret_cast<uintptr_t>(k.data_ptr()) % 16 == 0, fn,
             ": `kv[0]` must start 16-byte aligned; got address ", k.data_ptr());

    RaggedMqaLogitsArgs args{};
    args.q = q.data_ptr(), args.q_sf = nullptr, args.k = k.data_ptr(), args.kv_scale = kv_scale.data_ptr<float>();
    args.weights = weights.data_ptr(), args.weights_stride = weights.stride(0);
    args.weights_bf16 = weights.scalar_type() == torch::kBFloat16;
    return run_ragged_mqa_logits(args, ks, ke, clean_logits, max_seqlen_k, logits_dtype, num_q, num_heads, head_dim,
                                 num_k, false, device);
}

// The FP4 form: q (packed e2m1 int8 [S, H, D/2], int32 [S, H]), kv (packed e2m1 int8 [N, D/2], int32 [N]); each
// int32 holds four UE8M0 bytes little-endian, one per 32 elements of D (CONTRACT.md §2.1). D in {64, 128}.
inline torch::Tensor fp4_ragged_mqa_logits(const char* fn, const torch::Tensor& q, const torch::Tensor& q_sf,
                                           const torch::Tensor& k, const torch::Tensor& k_sf,
                                           const torch::Tensor& weights, const torch::Tensor& ks,
                                           const torch::Tensor& ke, bool clean_logits, int64_t max_seqlen_k,
                                           at::ScalarType logits_dtype) {
    const ArgCheck c{fn};
    c.cuda(q, "q[0]");
    DG_TYPE_CHECK(q.scalar_type() == torch::kChar or q.scalar_type() == torch::kByte, fn, ": `q` = (q, q_sf) with "
                  "scales is the FP4 form: `q[0]` must be packed e2m1 of dtype torch.int8 (or torch.uint8) [S, H, D/2]; "
                  "got dtype ", dtype_name(q.scalar_type()), " (for FP8 q pass `q` = (q_fp8, None))");
    c.dim(q, "q[0]", 3, "[S, H, D/2] (packed e2m1, two elements per byte)");
    c.contiguous(q, "q[0]");
    const int64_t num_q = q.size(0), num_heads = q.size(1), half = q.size(2), head_dim = 2 * half;
    c.one_of<int64_t>(num_heads, "q[0].shape[1]", {8, 16, 32, 64}, "the number of heads");
    DG_CHECK(head_dim == 64 or head_dim == 128, fn, ": FP4 `q[0]`.shape[2] must be D/2 with D in {64, 128} (the FP4 "
             "head dims), i.e. 32 or 64 packed bytes; got ", half, " (D = ", head_dim, ")");
    const auto device = q.device();
    c.on_device(q_sf, "q[1]", device);
    c.dtype(q_sf, "q[1]", torch::kInt);
    c.dim(q_sf, "q[1]", 2, "[S, H] (packed UE8M0 scales)");
    c.size(q_sf, "q[1]", 0, num_q, "S, the number of queries in `q[0]`");
    c.size(q_sf, "q[1]", 1, num_heads, "H, the number of heads in `q[0]`");
    c.contiguous(q_sf, "q[1]");

    DG_TYPE_CHECK(k.scalar_type() == torch::kChar or k.scalar_type() == torch::kByte, fn, ": FP4 q needs FP4 keys "
                  "`kv` = (packed e2m1 int8 [N, D/2], int32 scales [N]); got `kv[0]` of dtype ",
                  dtype_name(k.scalar_type()), " (FP8 keys need FP8 q = (float8_e4m3fn [S, H, D], None))");
    c.on_device(k, "kv[0]", device);
    c.dim(k, "kv[0]", 2, "[N, D/2] (packed e2m1)");
    c.size(k, "kv[0]", 1, half, "D/2, the packed head dim of `q[0]`");
    c.contiguous(k, "kv[0]");
    const int64_t num_k = k.size(0);
    c.on_device(k_sf, "kv[1]", device);
    DG_TYPE_CHECK(k_sf.scalar_type() == torch::kInt, fn, ": FP4 keys need `kv[1]` = int32 [N] packed UE8M0 scales; "
                  "got dtype ", dtype_name(k_sf.scalar_type()));
    c.dim(k_sf, "kv[1]", 1, "[N] (packed UE8M0 scales)");
    c.size(k_sf, "kv[1]", 0, num_k, "N, the number of keys in `kv[0]`");
    c.contiguous(k_sf, "kv[1]");

    check_ragged_common(c, fn, weights, ks, ke, clean_logits, max_seqlen_k, logits_dtype, num_q, num_heads, num_k,
                        device);
    DG_CHECK(reinterpret_cast<uintptr_t>(q.data_ptr()) % 16 == 0, fn,
             ": `q[0]` must start 16-byte aligned; got address ", q.data_ptr());
    DG_CHECK(reinterpret_cast<uintptr_t>(k.data_ptr()) % 16 == 0, fn,
             ": `kv[0]` must start 16-byte aligned; got address ", k.data_ptr());

    RaggedMqaLogitsArgs args{};
    args.q = q.data_ptr(), args.q_sf = q_sf.data_ptr<int>(), args.k = k.data_ptr(), args.kv_scale = k_sf.data_ptr();
    args.weights = weights.data_ptr(), args.weights_stride = weights.stride(0);
    args.weights_bf16 = weights.scalar_type() == torch::kBFloat16;
    return run_ragged_mqa_logits(args, ks, ke, clean_logits, max_seqlen_k, logits_dtype, num_q, num_heads, head_dim,
                                 num_k, true, device);
}

inline torch::Tensor fp8_fp4_mqa_logits(const std::tuple<torch::Tensor, std::optional<torch::Tensor>>& q,
                                        const std::tuple<torch::Tensor, torch::Tensor>& kv,
                                        const torch::Tensor& weights, const torch::Tensor& cu_seq_len_k_start,
                                        const torch::Tensor& cu_seq_len_k_end, bool clean_logits,
                                        int64_t max_seqlen_k, at::ScalarType logits_dtype) {
    const auto& [q_values, q_sf] = q;
    // ---- FP4 dispatch: the packed-e2m1 form (q = (int8 [S, H, D/2], int32 [S, H])) goes here ----
    if (q_sf.has_value())
        return fp4_ragged_mqa_logits("fp8_fp4_mqa_logits", q_values, *q_sf, std::get<0>(kv), std::get<1>(kv), weights,
                                     cu_seq_len_k_start, cu_seq_len_k_end, clean_logits, max_seqlen_k, logits_dtype);
    return fp8_ragged_mqa_logits("fp8_fp4_mqa_logits", q_values, std::get<0>(kv), std::get<1>(kv), weights,
                                 cu_seq_len_k_start, cu_seq_len_k_end, clean_logits, max_seqlen_k, logits_dtype);
}

inline torch::Tensor fp8_mqa_logits(const torch::Tensor& q, const std::tuple<torch::Tensor, torch::Tensor>& kv,
                                    const torch::Tensor& weights, const torch::Tensor& cu_seq_len_k_start,
                                    const torch::Tensor& cu_seq_len_k_end, bool clean_logits, int64_t max_seqlen_k) {
    return fp8_ragged_mqa_logits("fp8_mqa_logits", q, std::get<0>(kv), std::get<1>(kv), weights, cu_seq_len_k_start,
                                 cu_seq_len_k_end, clean_logits, max_seqlen_k, torch::kFloat);
}

inline void register_ragged_apis(pybind11::module_& m) {
    namespace py = pybind11;
    m.def("fp8_fp4_mqa_logits", &fp8_fp4_mqa_logits, py::arg("q"), py::arg("kv"), py::arg("weights"),
          py::arg("cu_seq_len_k_start"), py::arg("cu_seq_len_k_end"), py::arg("clean_logits") = true,
          py::arg("max_seqlen_k") = 0, py::arg("logits_dtype") = torch::kFloat);
    m.def("fp8_mqa_logits", &fp8_mqa_logits, py::arg("q"), py::arg("kv"), py::arg("weights"),
          py::arg("cu_seq_len_k_start"), py::arg("cu_seq_len_k_end"), py::arg("clean_logits") = true,
          py::arg("max_seqlen_k") = 0);
}
// ==== end ragged ====

// ==== paged: get_paged_mqa_logits_metadata, fp8_paged_mqa_logits, fp8_fp4_paged_mqa_logits ====

inline torch::Tensor fp8_fp4_paged_mqa_logits(const pybind11::object& q, const torch::Tensor& kv_cache,
                                              const torch::Tensor& weights, const torch::Tensor& context_lens,
                                              const torch::Tensor& block_table, const torch::Tensor& schedule_meta,
                                              int64_t max_context_len, bool clean_logits, at::ScalarType logits_dtype,
                                              const std::optional<torch::Tensor>& indices) {
    constexpr const char* fn = "fp8_fp4_paged_mqa_logits";
    torch::Tensor q_tensor;
    std::optional<torch::Tensor> q_sf;
    if (pybind11::isinstance<pybind11::tuple>(q) or pybind11::isinstance<pybind11::list>(q)) {
        const auto seq = q.cast<pybind11::sequence>();
        DG_TYPE_CHECK(seq.size() == 2, fn, ": `q` must be a tuple (q, q_sf); got a sequence of length ", seq.size());
        q_tensor = seq[0].cast<torch::Tensor>();
        if (not seq[1].is_none())
            q_sf = seq[1].cast<torch::Tensor>();
    } else {
        q_tensor = q.cast<torch::Tensor>();
    }
    // FP4 dispatch: q = (packed e2m1 int8 [B, next_n, H, D/2], int32 [B, next_n, H]) with an FP4 cache
    return paged_mqa_logits(fn, q_tensor, q_sf, kv_cache, weights, context_lens, block_table, schedule_meta,
                            max_context_len, clean_logits, logits_dtype, indices);
}

inline torch::Tensor fp8_paged_mqa_logits(const torch::Tensor& q, const torch::Tensor& kv_cache,
                                          const torch::Tensor& weights, const torch::Tensor& context_lens,
                                          const torch::Tensor& block_table, const torch::Tensor& schedule_meta,
                                          int64_t max_context_len, bool clean_logits,
                                          const std::optional<torch::Tensor>& indices) {
    return paged_mqa_logits("fp8_paged_mqa_logits", q, std::nullopt, kv_cache, weights, context_lens, block_table,
                            schedule_meta, max_context_len, clean_logits, torch::kFloat, indices);
}

inline void register_paged_apis(pybind11::module_& m) {
    namespace py = pybind11;
    m.def("get_paged_mqa_logits_metadata", &get_paged_mqa_logits_metadata, py::arg("context_lens"),
          py::arg("block_kv"), py::arg("num_sms"), py::arg("indices") = py::none());
    m.def("fp8_paged_mqa_logits", &fp8_paged_mqa_logits, py::arg("q"), py::arg("kv_cache"), py::arg("weights"),
          py::arg("context_lens"), py::arg("block_table"), py::arg("schedule_meta"), py::arg("max_context_len"),
          py::arg("clean_logits") = false, py::arg("indices") = py::none());
    m.def("fp8_fp4_paged_mqa_logits", &fp8_fp4_paged_mqa_logits, py::arg("q"), py::arg("kv_cache"),
          py::arg("weights"), py::arg("context_lens"), py::arg("block_table"), py::arg("schedule_meta"),
          py::arg("max_context_len"), py::arg("clean_logits") = false, py::arg("logits_dtype") = at::kFloat,
          py::arg("indices") = py::none());
}
// ==== end paged ====

inline void register_apis(pybind11::module_& m) {
    namespace py = pybind11;
    register_ragged_apis(m);
    register_paged_apis(m);
    // Internal: the sm_120 MMA-form cross-checks run so far in this process, as (key, passed, max_abs_diff)
    register_mma_cross_check_apis(m);
    m.def("_clean_logits_ragged", &clean_logits_ragged, py::arg("logits"), py::arg("ks"), py::arg("ke"));
    m.def("_clean_logits_paged", &clean_logits_paged, py::arg("logits"), py::arg("context_lens"), py::arg("next_n"));
}

} // namespace deep_gemm::attention
