#pragma once

// The GEMM APIs (GEMM.md §1): FP8 / FP4 GEMMs with block scales, their grouped forms, BF16 GEMMs, einsum and the
// cuBLASLt wrappers. Every function checks its arguments, turns its operands into K-major views (MN-major operands
// are copied once into K-major ones), and launches one SM120 GEMM kernel (impls/sm120_gemm.hpp).

#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/core/dispatch/Dispatcher.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>

#include "../jit_kernels/impls/sm120_gemm.hpp"
#include "../utils/checks.hpp"

namespace deep_gemm::gemm_api {

namespace py = pybind11;

// ------------------------------------------------------------------------------------------------- operands

// One GEMM operand, K-major: `data` is [G, MN, K stored] with a unit stride along K (FP4: K / 2 packed bytes);
// `sf` its scale factors as [G, rows along MN, columns along K] (any strides), with their format
struct Operand {
    torch::Tensor data;
    int type = kGemmDtypeFp8;
    int64_t mn = 0, k = 0;
    torch::Tensor sf;
    int sf_type = kGemmSfNone, gran_mn = 1, gran_k = 128;
};

// A scale-factor block size given by the caller: 0 = infer from the scale tensor's shape
struct Gran {
    int mn = 0, k = 0;
};

inline bool is_tensor(const py::handle& h) { return THPVariable_Check(h.ptr()); }

inline std::string type_name(const py::handle& h) { return std::string(py::str(py::type::of(h).attr("__name__"))); }

inline std::vector<int64_t> ints_of(const char* fn, const char* arg, const py::handle& h) {
    DG_TYPE_CHECK(py::isinstance<py::tuple>(h) or py::isinstance<py::list>(h), fn, ": `", arg,
                  "` must be a tuple of ints or None; got ", std::string(py::str(py::type::of(h).attr("__name__"))));
    std::vector<int64_t> v;
    for (const auto& x: h) {
        DG_TYPE_CHECK(py::isinstance<py::int_>(x), fn, ": `", arg, "` must hold ints; got ",
                      std::string(py::repr(h)));
        v.push_back(x.cast<int64_t>());
    }
    return v;
}

// `recipe` (gm, gn, gk), or `recipe_a` (gm, gk) / `recipe_b` (gn, gk)
inline std::pair<Gran, Gran> parse_recipes(const char* fn, const py::object& recipe, const py::object& recipe_a,
                                           const py::object& recipe_b) {
    Gran a, b;
    const auto check = [&](const char* arg, const std::vector<int64_t>& v, size_t n) {
        DG_CHECK(v.size() == n, fn, ": `", arg, "` must be a tuple of ", n, " ints; got ", v.size(), " values");
        for (const auto x: v)
            DG_CHECK(x == 1 or x == 32 or x == 128, fn, ": `", arg, "` entries must be 1, 32 or 128 (scale block "
                     "sizes); got ", cat(v));
    };
    if (not recipe.is_none()) {
        DG_CHECK(recipe_a.is_none() and recipe_b.is_none(), fn, ": give either `recipe` or `recipe_a`/`recipe_b`, "
                 "not both");
        const auto v = ints_of(fn, "recipe", recipe);
        check("recipe", v, 3);
        a = {static_cast<int>(v[0]), static_cast<int>(v[2])}, b = {static_cast<int>(v[1]), static_cast<int>(v[2])};
    }
    if (not recipe_a.is_none()) {
        const auto v = ints_of(fn, "recipe_a", recipe_a);
        check("recipe_a", v, 2);
        a = {static_cast<int>(v[0]), static_cast<int>(v[1])};
    }
    if (not recipe_b.is_none()) {
        const auto v = ints_of(fn, "recipe_b", recipe_b);
        check("recipe_b", v, 2);
        b = {static_cast<int>(v[0]), static_cast<int>(v[1])};
    }
    return {a, b};
}

// (tensor, scale factors) from a tuple or list of two tensors
inline std::pair<torch::Tensor, torch::Tensor> parse_pair(const char* fn, const char* arg, const py::object& o) {
    DG_TYPE_CHECK(py::isinstance<py::tuple>(o) or py::isinstance<py::list>(o), fn, ": `", arg,
                  "` must be a tuple (tensor, scale_factors); got ",
                  std::string(py::str(py::type::of(o).attr("__name__"))));
    const auto seq = o.cast<py::sequence>();
    DG_TYPE_CHECK(seq.size() == 2, fn, ": `", arg, "` must be a tuple (tensor, scale_factors) of 2; got ", seq.size(),
                  " items");
    DG_TYPE_CHECK(is_tensor(seq[0]) and is_tensor(seq[1]), fn, ": `", arg, "` must hold two tensors (values, scale "
                  "factors); got (", type_name(seq[0]), ", ", type_name(seq[1]), ")");
    return {seq[0].cast<torch::Tensor>(), seq[1].cast<torch::Tensor>()};
}

inline int dtype_code(const char* fn, const char* arg, const torch::Tensor& t, bool allow_bf16) {
    if (t.scalar_type() == torch::kFloat8_e4m3fn)
        return kGemmDtypeFp8;
    if (t.scalar_type() == torch::kChar or t.scalar_type() == torch::kByte)
        return kGemmDtypeFp4;
    if (allow_bf16 and t.scalar_type() == torch::kBFloat16)
        return kGemmDtypeBf16;
    DG_TYPE_CHECK(false, fn, ": `", arg, "` must be ", allow_bf16 ? "torch.bfloat16" : "torch.float8_e4m3fn or packed "
                  "FP4 (e2m1, two per byte) of dtype torch.int8", "; got ", describe(t));
    return 0;
}

// Whether packed FP4 `t` [G, X, Y] is MN-major: upstream's `transpose_packed_fp4(x).T`, [MN / 2, K] with the packed
// MN pairs contiguous (K-major packed FP4 is [MN, K / 2] with K contiguous)
inline bool is_mn_major_fp4(const torch::Tensor& t) {
    return t.size(-1) > 1 and t.stride(-1) != 1 and (t.size(-2) <= 1 or t.stride(-2) == 1);
}

// MN-major packed FP4 [G, MN / 2, K] (two MN neighbours per byte, low nibble first) -> K-major [G, MN, K / 2] (two K
// neighbours per byte): the values are unpacked, transposed and packed again (one copy, like an MN-major FP8 operand)
inline torch::Tensor fp4_k_major_from_mn_major(const torch::Tensor& t) {
    const int64_t groups = t.size(0), mn = 2 * t.size(1), k = t.size(2);
    const auto bytes = t.transpose(1, 2).contiguous().view(torch::kUInt8);          // [G, K, MN / 2]
    const auto values = torch::stack({torch::bitwise_and(bytes, 15), torch::bitwise_right_shift(bytes, 4)}, -1)
                            .view({groups, k, mn}).transpose(1, 2).contiguous().view({groups, mn, k / 2, 2});
    const auto packed = torch::bitwise_or(values.select(-1, 0), torch::bitwise_left_shift(values.select(-1, 1), 4));
    return packed.contiguous().view(t.scalar_type());
}

// `t` [G, MN, K stored] as a K-major tensor whose rows start 16-byte aligned (a copy when it is MN-major, or when its
// rows are not 16-byte aligned). Packed FP4 may come MN-major as [G, MN / 2, K] (`is_mn_major_fp4`).
inline torch::Tensor k_major(const char* fn, const char* arg, const torch::Tensor& t, int type) {
    const bool k_major = t.size(-1) <= 1 or t.stride(-1) == 1;
    const bool mn_major = t.size(-2) <= 1 or t.stride(-2) == 1;
    DG_CHECK(k_major or mn_major, fn, ": `", arg, "` must be contiguous along K (K-major) or along M/N (MN-major); "
             "got strides ", t.strides().vec(), " for ", describe(t));
    if (type == kGemmDtypeFp4 and is_mn_major_fp4(t)) {
        DG_CHECK(t.size(-1) % 2 == 0, fn, ": `", arg, "`: MN-major packed FP4 [MN / 2, K] needs an even K; got ",
                 describe(t));
        return fp4_k_major_from_mn_major(t);
    }
    torch::Tensor out = k_major ? t : t.contiguous();
    const int64_t elem = out.element_size();
    const bool aligned = reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0 and
                         (out.size(-2) <= 1 or (out.stride(-2) * elem) % 16 == 0) and
                         (out.size(0) <= 1 or (out.stride(0) * elem) % 16 == 0);
    return aligned ? out : out.contiguous();
}

// Scale factors of `op` from `sf` and the caller's block sizes (`gran`, 0 = infer). Float32 scales are
// [G?, ceil(MN / gran_mn), ceil(K / gran_k)]; int32 scales are packed UE8M0 (four K blocks per int, per row):
// [G?, MN, ceil(K / gran_k / 4)]. Any strides.
inline void attach_scales(const char* fn, const char* arg, Operand& op, torch::Tensor sf, Gran gran, int64_t groups,
                          bool allow_block_mn) {
    const ArgCheck c{fn};
    c.on_device(sf, arg, op.data.device());
    DG_TYPE_CHECK(sf.scalar_type() == torch::kFloat or sf.scalar_type() == torch::kInt, fn, ": `", arg,
                  "` must be float32 scales or int32 packed UE8M0 scales; got ", describe(sf));
    const bool packed = sf.scalar_type() == torch::kInt;
    DG_CHECK(sf.dim() == 2 or sf.dim() == 3, fn, ": `", arg, "` must be 2-D (or 3-D with groups); got ", describe(sf));
    if (sf.dim() == 2)
        sf = sf.unsqueeze(0);
    DG_CHECK(sf.size(0) == groups or (sf.size(0) == 1 and groups == 1), fn, ": `", arg, "` must have ", groups,
             " group(s) along dim 0; got ", describe(sf));
    const auto cdiv = [](int64_t x, int64_t y) { return (x + y - 1) / y; };
    const int64_t rows = sf.size(1), cols = sf.size(2);
    // Block sizes from the shape where the caller gave none
    if (gran.k == 0) {
        const int64_t k128 = packed ? cdiv(cdiv(op.k, 128), 4) : cdiv(op.k, 128);
        const int64_t k32 = packed ? cdiv(cdiv(op.k, 32), 4) : cdiv(op.k, 32);
        gran.k = cols == k128 ? 128 : (cols == k32 ? 32 : 128);
    }
    if (gran.mn == 0)
        gran.mn = rows == op.mn ? 1 : (allow_block_mn and not packed and rows == cdiv(op.mn, 128) ? 128 : 1);
    DG_CHECK(gran.k == 128 or gran.k == 32, fn, ": the K block of `", arg, "` must be 128 or 32; got ", gran.k);
    DG_CHECK(gran.mn == 1 or (gran.mn == 128 and allow_block_mn and not packed), fn, ": the ",
             allow_block_mn ? "N" : "M", " block of `", arg, "` must be 1", allow_block_mn and not packed ?
             " or 128" : "", packed ? " (packed UE8M0 scales are per row)" : "", "; got ", gran.mn);
    const int64_t want_rows = cdiv(op.mn, gran.mn);
    const int64_t want_cols = packed ? cdiv(cdiv(op.k, gran.k), 4) : cdiv(op.k, gran.k);
    DG_CHECK(rows == want_rows and cols == want_cols, fn, ": `", arg, "` must have shape [", groups > 1 ?
             cat(groups, ", ") : "", want_rows, ", ", want_cols, "] (", packed ? "packed UE8M0 int32" : "float32",
             " scales for MN = ", op.mn, ", K = ", op.k, " with blocks of ", gran.mn, " x ", gran.k, "); got ",
             describe(sf));
    DG_CHECK(reinterpret_cast<uintptr_t>(sf.data_ptr()) % 4 == 0, fn, ": `", arg, "` must be 4-byte aligned");
    op.sf = sf, op.sf_type = packed ? kGemmSfUE8M0 : kGemmSfFloat, op.gran_mn = gran.mn, op.gran_k = gran.k;
}

// A quantized operand (values, scales) of `groups` groups of [MN, K]: returns it K-major with its scales
inline Operand quant_operand(const char* fn, const char* arg, const char* sf_arg, const torch::Tensor& t,
                             const torch::Tensor& sf, int64_t groups, Gran gran, bool allow_block_mn) {
    const ArgCheck c{fn};
    c.cuda(t, arg);
    Operand op;
    op.type = dtype_code(fn, arg, t, false);
    DG_CHECK(t.dim() == (groups > 1 or t.dim() == 3 ? 3 : 2), fn, ": `", arg, "` must be ", groups > 1 ? "3-D [G, MN, K]"
             : "2-D [MN, K]", "; got ", describe(t));
    auto v = t.dim() == 2 ? t.unsqueeze(0) : t;
    const bool fp4_mn_major = op.type == kGemmDtypeFp4 and is_mn_major_fp4(v);
    op.data = k_major(fn, arg, v, op.type);
    op.mn = fp4_mn_major ? 2 * v.size(1) : v.size(1);
    op.k = op.type == kGemmDtypeFp4 and not fp4_mn_major ? 2 * v.size(2) : v.size(2);
    attach_scales(fn, sf_arg, op, sf, gran, v.size(0), allow_block_mn);
    return op;
}

inline Operand bf16_operand(const char* fn, const char* arg, const torch::Tensor& t, int64_t groups) {
    const ArgCheck c{fn};
    c.cuda(t, arg);
    c.dtype(t, arg, torch::kBFloat16);
    DG_CHECK(t.dim() == (groups > 1 or t.dim() == 3 ? 3 : 2), fn, ": `", arg, "` must be ", groups > 1 ? "3-D [G, MN, K]"
             : "2-D [MN, K]", "; got ", describe(t));
    Operand op;
    op.type = kGemmDtypeBf16;
    auto v = t.dim() == 2 ? t.unsqueeze(0) : t;
    op.data = k_major(fn, arg, v, op.type);
    op.mn = v.size(1), op.k = v.size(2);
    return op;
}

// ------------------------------------------------------------------------------------------------- one launch

struct GemmCall {
    int kind = kGemmKindNormal;
    Operand a, b;
    torch::Tensor d, c;             // [G or 1, rows, N] views; `c` may be undefined
    int64_t m = 0, n = 0, k = 0;    // m: rows of A per group (masked: max_m; contiguous: all)
    int64_t num_groups = 1;
    int64_t plan_m = 0;             // rows per group to plan the M tile for (0: m)
    int64_t total_m = 0;            // m-grouped contiguous: all rows of A (its m tiles are the units)
    torch::Tensor grouped_layout;   // int32 per kind (scheduler/gemm.cuh)
    int max_block_m = 128;
    int skip_left = 0, skip_mid = 0, skip_right = 0;
    int64_t k_batch = 0;            // einsum bmk,bnk->mn: K is batches of k_batch (A and B group strides)
    bool bmk_name = false;
    bool allow_split_k = true;
    bool zero_padding = false;      // psum: write zeros into D's gap rows
};

// One GEMM per group of `d` [G, M, N] (+ `c`, same shape): D_g = A_g [M, K] · B_g [N, K]ᵀ, sizes from the operands
inline GemmCall gemm_call(Operand a, Operand b, const torch::Tensor& d, const std::optional<torch::Tensor>& c) {
    GemmCall call;
    call.m = a.mn, call.n = b.mn, call.k = a.k, call.num_groups = d.size(0);
    call.a = std::move(a), call.b = std::move(b);
    call.d = d;
    if (c.has_value())
        call.c = *c;
    return call;
}

// The sm_120a/121a-only MMA form of `config` (HW scales, or Promote through the unit-scale block-scaled MMA): kept
// if it agrees with the Promote twin on a small random input, once per configuration, device and process
MmaCheckResult cross_check_gemm(const GemmConfig& candidate, int device, cudaStream_t stream, bool inject_fault);

inline bool resolve_gemm_form(const GemmConfig& config, const GemmKnobs& knobs, int device, cudaStream_t stream) {
    const bool candidate = config.hw_scales or config.fast_mma;
    if (not candidate and not knobs.check_forced)
        return candidate;
    // A per-thread cache of resolved forms, so a warm call builds no string and takes no lock
    struct Entry { uint64_t key, epoch, generation; bool value; };
    static thread_local std::vector<Entry> cache;
    const uint64_t key = config.key() * 64 + static_cast<uint64_t>(device);
    const uint64_t epoch = MmaCrossCheck::get().epoch();
    for (const auto& e: cache)
        if (e.key == key and e.epoch == epoch and e.generation == knobs.generation)
            return e.value;
    const bool value = MmaCrossCheck::get().resolve("sm120_gemm", config.describe(), candidate,
                                                    kFp8BlockScaledValidatedOnHardware, device, stream,
                                                    [&](bool fault) { return cross_check_gemm(config, device, stream, fault); });
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    DG_RUNTIME_CHECK(cudaStreamIsCapturing(stream, &capture) == cudaSuccess, "deep_gemm: cudaStreamIsCapturing failed");
    if (capture == cudaStreamCaptureStatusNone)   // a capture-time "twin for now" is not a verdict
        cache.push_back({key, epoch, knobs.generation, value});
    return value;
}

// Packed UE8M0 scales [G, MN, cols] (int32, four K blocks per int, little-endian) as float32 [G, MN, 4 * cols]: the
// Promote form multiplies in FP32. Byte s is 2^(s - 127); s = 0 is 2^-127 (subnormal), s = 255 the UE8M0 NaN.
inline torch::Tensor unpack_ue8m0(const torch::Tensor& packed) {
    const auto bytes = packed.contiguous().view(torch::kUInt8).to(torch::kInt);
    auto bits = torch::bitwise_left_shift(bytes, 23);
    bits = torch::where(bytes == 0, torch::full_like(bits, 0x00400000), bits);
    bits = torch::where(bytes == 255, torch::full_like(bits, 0x7fc00000), bits);
    return bits.view(torch::kFloat);
}

inline void fill_operand(const Operand& op, bool broadcast_group, const void*& ptr, long long& stride_g,
                         long long& stride_row, const void*& sf, long long& sf_g, long long& sf_mn, long long& sf_k,
                         bool hw) {
    const int64_t elem = op.data.element_size();
    ptr = op.data.data_ptr();
    stride_g = broadcast_group ? 0 : op.data.stride(0) * elem;
    stride_row = op.data.stride(1) * elem;
    sf = nullptr, sf_g = sf_mn = sf_k = 0;
    if (not op.sf.defined())
        return;
    // Promote reads float32 scales: packed ones are unpacked here (a tensor `keep` of the call holds them)
    const torch::Tensor& s = op.sf;
    DG_HOST_ASSERT(hw == (op.sf_type == kGemmSfUE8M0));
    sf = s.data_ptr();
    sf_g = broadcast_group ? 0 : s.stride(0);
    sf_mn = s.stride(1), sf_k = s.stride(2);
}

inline void run_gemm(const char* fn, const GemmCall& call, const GemmConfig* forced = nullptr) {
    const int device = call.d.get_device();
    const c10::cuda::CUDAGuard guard(call.d.device());
    const auto stream = at::cuda::getCurrentCUDAStream(device).stream();
    const GemmKnobs& knobs = GemmKnobs::get();
    const ArchSpec& arch_cached = cached_arch_spec(device);
    ArchSpec arch = arch_cached;
    arch.num_sms = jit::DeviceRuntime::get().get_num_sms();

    GemmConfig config;
    GemmTiling tiling;
    if (forced != nullptr) {
        config = *forced;
        tiling.block_m = config.block_m, tiling.block_n = config.block_n;
        tiling.grid = arch.num_sms;
    } else {
        GemmShape shape;
        shape.kind = call.kind, shape.m = static_cast<int>(call.plan_m > 0 ? call.plan_m : call.m);
        shape.n = static_cast<int>(call.n), shape.k = static_cast<int>(call.k);
        shape.num_groups = static_cast<int>(call.num_groups), shape.total_m = static_cast<int>(call.total_m);
        shape.type_a = call.a.type, shape.type_b = call.b.type;
        shape.sf_gran_k_a = call.a.gran_k, shape.sf_gran_k_b = call.b.gran_k;
        shape.max_block_m = call.max_block_m;
        shape.allow_split_k = call.allow_split_k;
        tiling = GemmHeuristics::plan(arch, shape);
        config.block_m = tiling.block_m, config.block_n = tiling.block_n, config.warps_m = tiling.warps_m;
        config.warps_n = tiling.warps_n, config.num_stages = tiling.num_stages;
        config.kind = call.kind;
        config.type_a = call.a.type, config.type_b = call.b.type;
        config.sf_gran_k_a = call.a.sf_type == kGemmSfNone ? 128 : call.a.gran_k;
        config.sf_gran_k_b = call.b.sf_type == kGemmSfNone ? 128 : call.b.gran_k;
        config.bmk_name = call.bmk_name;
        // The sm_120a/121a-only forms, unless DG_SM120_FP8_MMA=plain; then the one-time cross-check
        if (not config.bf16() and arch.block_scaled_mma and not knobs.fp8_plain) {
            if (call.a.sf_type == kGemmSfUE8M0 and call.b.sf_type == kGemmSfUE8M0)
                config.hw_scales = true;
            else
                config.fast_mma = true;
        }
        // (the plan sized stages for float scales, so the twin fits the same stages)
        if (not config.bf16() and not resolve_gemm_form(config, knobs, device, stream))
            config.hw_scales = config.fast_mma = false;
    }
    if (knobs.print_configs)
        std::fprintf(stderr, "deep_gemm: %s: %s splits=%d grid=%d\n", fn, config.describe().c_str(), tiling.num_splits,
                     tiling.grid);

    // The HW form reads packed UE8M0 scales as they are; Promote needs float32 ones
    Operand a = call.a, b = call.b;
    bool padded_rows = false;
    for (Operand* op: {&a, &b}) {
        if (op->sf_type == kGemmSfUE8M0 and not config.hw_scales) {
            op->sf = unpack_ue8m0(op->sf), op->sf_type = kGemmSfFloat;
            padded_rows = padded_rows or call.kind == kGemmKindKGrouped;
        }
    }
    GemmParams p{};
    const bool broadcast_a = a.data.size(0) == 1 and call.num_groups > 1;
    const bool broadcast_b = b.data.size(0) == 1 and call.num_groups > 1;
    fill_operand(a, broadcast_a, p.a, p.a_stride_g, p.a_stride_m, p.sfa, p.sfa_stride_g, p.sfa_stride_mn,
                 p.sfa_stride_k, config.hw_scales);
    fill_operand(b, broadcast_b, p.b, p.b_stride_g, p.b_stride_n, p.sfb, p.sfb_stride_g, p.sfb_stride_mn,
                 p.sfb_stride_k, config.hw_scales);
    p.d = call.d.data_ptr();
    p.d_stride_g = call.d.size(0) == 1 and call.num_groups > 1 ? 0 : call.d.stride(0);
    p.d_stride_m = call.d.stride(1);
    if (call.c.defined()) {
        p.c = call.c.data_ptr();
        p.c_stride_g = call.c.size(0) == 1 and call.num_groups > 1 ? 0 : call.c.stride(0);
        p.c_stride_m = call.c.stride(1);
    }
    p.grouped_layout = call.grouped_layout.defined() ? call.grouped_layout.data_ptr<int>() : nullptr;
    p.m = static_cast<int>(call.m), p.n = static_cast<int>(call.n), p.k = static_cast<int>(call.k);
    p.num_groups = static_cast<int>(call.num_groups);
    p.mk_alignment = jit::DeviceRuntime::get().get_mk_alignment();
    p.skip_head_left = call.skip_left, p.skip_head_mid = call.skip_mid, p.skip_head_right = call.skip_right;
    p.k_batch = static_cast<int>(call.k_batch);
    p.flags = (padded_rows ? kGemmSfRowsPadded4 : 0) | (b.gran_mn != 1 ? kGemmSfBlockB : 0) |
              (call.d.scalar_type() == torch::kBFloat16 ? kGemmOutBF16 : 0) | (call.c.defined() ? kGemmWithC : 0) |
              (call.skip_left + call.skip_mid + call.skip_right > 0 ? kGemmSkipHeadMid : 0) |
              (call.zero_padding ? kGemmZeroPadding : 0);
    if (call.k_batch > 0) {
        // The K batches of A and B are their "groups"
        p.a_stride_g = a.data.stride(0) * a.data.element_size();
        p.b_stride_g = b.data.stride(0) * b.data.element_size();
        p.num_groups = 1;
    }
    launch_gemm_with(config, tiling, p, device, stream);
}

// ------------------------------------------------------------------------------------------------- checks

inline void check_output(const char* fn, const torch::Tensor& d, const c10::Device& device,
                         std::initializer_list<at::ScalarType> dtypes, std::vector<int64_t> shape) {
    const ArgCheck c{fn};
    c.on_device(d, "d", device);
    c.dtype_one_of(d, "d", dtypes);
    DG_CHECK(d.sizes().vec() == shape, fn, ": `d` must have shape ", shape, "; got ", describe(d));
    c.last_dim_contiguous(d, "d");
    const int64_t elem = d.element_size();
    DG_CHECK(reinterpret_cast<uintptr_t>(d.data_ptr()) % (2 * elem) == 0 and d.size(-1) % 2 == 0 and
             (d.dim() < 2 or d.size(-2) <= 1 or d.stride(-2) % 2 == 0) and (d.dim() < 3 or d.size(0) <= 1 or
             d.stride(0) % 2 == 0), fn, ": `d` must have an even number of columns and even row strides (outputs are "
             "stored in pairs); got ", describe(d), " with strides ", d.strides().vec());
}

inline void check_accumulator(const char* fn, const std::optional<torch::Tensor>& c, const torch::Tensor& d) {
    if (not c.has_value())
        return;
    const ArgCheck chk{fn};
    chk.on_device(*c, "c", d.device());
    DG_TYPE_CHECK(c->scalar_type() == d.scalar_type(), fn, ": `c` must have the dtype of `d` (",
                  dtype_name(d.scalar_type()), "); got ", describe(*c));
    DG_CHECK(c->sizes() == d.sizes(), fn, ": `c` must have the shape of `d` ", shape_of(d), "; got ", describe(*c));
    chk.last_dim_contiguous(*c, "c");
    DG_CHECK(reinterpret_cast<uintptr_t>(c->data_ptr()) % (2 * c->element_size()) == 0 and
             (c->dim() < 2 or c->size(-2) <= 1 or c->stride(-2) % 2 == 0), fn, ": `c` rows must start at even elements; "
             "got strides ", c->strides().vec());
}

inline void check_k(const char* fn, const Operand& a, const Operand& b) {
    DG_CHECK(a.k == b.k, fn, ": `a` and `b` must have the same K; got K = ", a.k, " (a) and ", b.k, " (b)");
    const int64_t need = a.type == kGemmDtypeFp4 or b.type == kGemmDtypeFp4 ? 32 : (a.type == kGemmDtypeBf16 ? 8 : 16);
    DG_CHECK(a.k % need == 0, fn, ": K must be a multiple of ", need, " (16-byte rows for the tile copies); got K = ",
             a.k);
    DG_CHECK(a.k < (int64_t{1} << 31) and a.mn < (int64_t{1} << 31) and b.mn < (int64_t{1} << 31), fn,
             ": M, N and K must each be < 2^31");
}

inline void check_combo(const char* fn, const Operand& a, const Operand& b) {
    const bool bf16 = a.type == kGemmDtypeBf16;
    DG_CHECK(gemm_combo_allowed(a.type, b.type, bf16 ? 128 : a.gran_k, bf16 ? 128 : b.gran_k), fn,
             ": unsupported operand / scale combination: A ", a.type == kGemmDtypeFp4 ? "FP4" : "FP8", " with K blocks of ",
             a.gran_k, ", B ", b.type == kGemmDtypeFp4 ? "FP4" : "FP8", " with K blocks of ", b.gran_k,
             "; supported: FP8 x FP8 (128/128, 32/32, 128/32), FP8 x FP4 (128/32, 32/32), FP4 x FP8 (32/128, 32/32), "
             "FP4 x FP4 (32/32)");
}

// ------------------------------------------------------------------------------------------------- FP8 / FP4 GEMMs

// D [M, N] (+ C) = A [M, K] · B [N, K]ᵀ with `a` / `b` as given to the `nt` form (K-major or MN-major views)
inline void fp8_fp4_gemm(const char* fn, const py::object& a_obj, const py::object& b_obj, const torch::Tensor& d,
                         const std::optional<torch::Tensor>& c, const py::object& recipe, const py::object& recipe_a,
                         const py::object& recipe_b, bool transpose_a, bool transpose_b, int skip_left = 0,
                         int skip_mid = 0, int skip_right = 0) {
    auto [a_t, sfa] = parse_pair(fn, "a", a_obj);
    auto [b_t, sfb] = parse_pair(fn, "b", b_obj);
    const auto [gran_a, gran_b] = parse_recipes(fn, recipe, recipe_a, recipe_b);
    const ArgCheck chk{fn};
    chk.cuda(a_t, "a[0]");
    DG_CHECK(a_t.dim() == 2 and b_t.dim() == 2, fn, ": `a[0]` and `b[0]` must be 2-D; got ", describe(a_t), " and ",
             describe(b_t));
    // Upstream's form letters (its tests' `a.T` / `b.T` aliases): the first is A's, `t` = given as [K, M]; the
    // second is B's, `n` = given as [K, N]. So nn: B [K, N]; tn: A [K, M] and B [K, N]; tt: A [K, M]. Scales alike.
    if (transpose_a)
        a_t = a_t.t(), sfa = sfa.dim() == 2 ? sfa.t() : sfa;
    if (transpose_b)
        b_t = b_t.t(), sfb = sfb.dim() == 2 ? sfb.t() : sfb;
    chk.on_device(b_t, "b[0]", a_t.device());
    auto a = quant_operand(fn, "a[0]", "a[1]", a_t, sfa, 1, gran_a, false);
    auto b = quant_operand(fn, "b[0]", "b[1]", b_t, sfb, 1, gran_b, true);
    check_k(fn, a, b);
    check_combo(fn, a, b);
    const int64_t m = a.mn, n = b.mn;
    const bool skip = skip_left + skip_mid + skip_right > 0;
    int64_t d_cols = n;
    if (skip) {
        DG_CHECK(skip_left >= 0 and skip_mid >= 0 and skip_right >= 0 and skip_left % 2 == 0 and skip_right % 2 == 0
                 and skip_left + skip_right > 0 and n % (skip_left + skip_right) == 0, fn, ": `head_splits` (left, "
                 "mid, right) must be non-negative with even left/right and N = ", n, " a multiple of left + right; "
                 "got (", skip_left, ", ", skip_mid, ", ", skip_right, ")");
        d_cols = n / (skip_left + skip_right) * (skip_left + skip_mid + skip_right);
    }
    check_output(fn, d, a.data.device(), {torch::kBFloat16, torch::kFloat}, {m, d_cols});
    DG_CHECK(not (skip and c.has_value()), fn, ": `c` is not supported with head splits");
    check_accumulator(fn, c, d);
    if (m == 0 or n == 0)
        return;
    auto call = gemm_call(std::move(a), std::move(b), d.unsqueeze(0),
                          c.has_value() ? std::optional{c->unsqueeze(0)} : std::nullopt);
    call.skip_left = skip_left, call.skip_mid = skip_mid, call.skip_right = skip_right;
    run_gemm(fn, call);
}

inline void register_fp8_apis(py::module_& m) {
    const auto def_form = [&](const char* name, const char* alias, bool ta, bool tb, const char* dims) {
        for (const char* fn: {name, alias}) {
            m.def(fn, [fn, ta, tb](const py::object& a, const py::object& b, const torch::Tensor& d,
                                   const std::optional<torch::Tensor>& c, const py::object& recipe,
                                   const py::object& recipe_a, const py::object& recipe_b, const std::string&,
                                   bool) {
                      fp8_fp4_gemm(fn, a, b, d, c, recipe, recipe_a, recipe_b, ta, tb);
                  },
                  py::arg("a"), py::arg("b"), py::arg("d"), py::arg("c") = py::none(), py::arg("recipe") = py::none(),
                  py::arg("recipe_a") = py::none(), py::arg("recipe_b") = py::none(), py::arg("compiled_dims") = dims,
                  py::arg("disable_ue8m0_cast") = false);
        }
    };
    def_form("fp8_fp4_gemm_nt", "fp8_gemm_nt", false, false, "nk");
    def_form("fp8_fp4_gemm_nn", "fp8_gemm_nn", false, true, "nk");
    def_form("fp8_fp4_gemm_tn", "fp8_gemm_tn", true, true, "mn");
    def_form("fp8_fp4_gemm_tt", "fp8_gemm_tt", true, false, "mn");
    m.def("fp8_gemm_nt_skip_head_mid",
          [](const py::object& a, const py::object& b, const torch::Tensor& d, const py::object& head_splits,
             const py::object& recipe, const std::string&, bool) {
              constexpr const char* fn = "fp8_gemm_nt_skip_head_mid";
              const auto v = ints_of(fn, "head_splits", head_splits);
              DG_CHECK(v.size() == 3, fn, ": `head_splits` must be (left, mid, right); got ", v.size(), " values");
              fp8_fp4_gemm(fn, a, b, d, std::nullopt, recipe, py::none(), py::none(), false, false,
                           static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]));
          },
          py::arg("a"), py::arg("b"), py::arg("d"), py::arg("head_splits"), py::arg("recipe") = py::none(),
          py::arg("compiled_dims") = "nk", py::arg("disable_ue8m0_cast") = false);
}

// ------------------------------------------------------------------------------------------------- m-grouped

// Operands of an m-grouped GEMM: A [M, K] / [G, max_m, K] and B [G, N, K] as given to the `nt` form
inline std::pair<Operand, Operand> grouped_operands(const char* fn, const py::object& a_obj, const py::object& b_obj,
                                                    const py::object& recipe, const py::object& recipe_a,
                                                    const py::object& recipe_b, bool a_grouped, bool transpose_b,
                                                    bool bf16) {
    torch::Tensor a_t, sfa, b_t, sfb;
    if (bf16) {
        DG_TYPE_CHECK(is_tensor(a_obj) and is_tensor(b_obj), fn, ": `a` and `b` must be bf16 tensors; got ",
                      type_name(a_obj), " and ", type_name(b_obj));
        a_t = a_obj.cast<torch::Tensor>(), b_t = b_obj.cast<torch::Tensor>();
    } else {
        std::tie(a_t, sfa) = parse_pair(fn, "a", a_obj);
        std::tie(b_t, sfb) = parse_pair(fn, "b", b_obj);
    }
    const ArgCheck chk{fn};
    chk.cuda(b_t, bf16 ? "b" : "b[0]");
    DG_CHECK(b_t.dim() == 3, fn, ": `b` must be 3-D [G, N, K]", transpose_b ? " ([G, K, N] for the nn form)" : "",
             "; got ", describe(b_t));
    if (transpose_b) {
        b_t = b_t.transpose(1, 2);
        if (sfb.defined() and sfb.dim() == 3)
            sfb = sfb.transpose(1, 2);
    }
    const int64_t groups = b_t.size(0);
    DG_CHECK(groups >= 1, fn, ": `b` must hold at least one group; got ", describe(b_t));
    DG_CHECK(a_t.dim() == (a_grouped ? 3 : 2), fn, ": `a` must be ", a_grouped ? "3-D [G, max_m, K]" : "2-D [M, K]",
             "; got ", describe(a_t));
    if (a_grouped)
        DG_CHECK(a_t.size(0) == groups, fn, ": `a` and `b` must have the same number of groups; got ", describe(a_t),
                 " and ", describe(b_t));
    if (bf16)
        return {bf16_operand(fn, "a", a_t, a_grouped ? groups : 1), bf16_operand(fn, "b", b_t, groups)};
    const auto [gran_a, gran_b] = parse_recipes(fn, recipe, recipe_a, recipe_b);
    chk.on_device(a_t, "a[0]", b_t.device());
    return {quant_operand(fn, "a[0]", "a[1]", a_t, sfa, a_grouped ? groups : 1, gran_a, false),
            quant_operand(fn, "b[0]", "b[1]", b_t, sfb, groups, gran_b, true)};
}

// The largest M tile (16 .. 128) dividing the contiguous layout's alignment (a tile never straddles two groups)
inline int max_block_m_for_alignment(const char* fn, int alignment) {
    int block = 128;
    while (block > 16 and alignment % block != 0)
        block /= 2;
    DG_CHECK(alignment % block == 0, fn, ": the m-grouped layouts need get_mk_alignment_for_contiguous_layout() to be a "
             "multiple of 16; it is ", alignment, " (set_mk_alignment_for_contiguous_layout)");
    return block;
}

inline void m_grouped_contiguous(const char* fn, const py::object& a_obj, const py::object& b_obj,
                                 const torch::Tensor& d, const torch::Tensor& grouped_layout, const py::object& recipe,
                                 const py::object& recipe_a, const py::object& recipe_b, bool use_psum_layout,
                                 bool ensure_zero_padding, const std::optional<int64_t>& expected_m, bool transpose_b,
                                 bool bf16) {
    auto [a, b] = grouped_operands(fn, a_obj, b_obj, recipe, recipe_a, recipe_b, false, transpose_b, bf16);
    check_k(fn, a, b);
    if (not bf16)
        check_combo(fn, a, b);
    const int64_t m = a.mn, n = b.mn, groups = b.data.size(0);
    check_output(fn, d, a.data.device(), {torch::kBFloat16}, {m, n});
    const ArgCheck chk{fn};
    chk.on_device(grouped_layout, "grouped_layout", a.data.device());
    chk.dtype(grouped_layout, "grouped_layout", torch::kInt);
    chk.contiguous(grouped_layout, "grouped_layout");
    if (use_psum_layout)
        DG_CHECK(grouped_layout.dim() == 1 and grouped_layout.size(0) == groups, fn, ": with `use_psum_layout=True`, "
                 "`grouped_layout` must be [G] = [", groups, "] cumulative end rows; got ", describe(grouped_layout));
    else
        DG_CHECK(grouped_layout.dim() == 1 and grouped_layout.size(0) == m, fn, ": `grouped_layout` must be [M] = [",
                 m, "] group ids (-1 for padding rows); got ", describe(grouped_layout));
    if (expected_m.has_value())
        DG_CHECK(*expected_m >= 0, fn, ": `expected_m_for_psum_layout` must be >= 0; got ", *expected_m);
    if (m == 0 or n == 0)
        return;
    const int alignment = jit::DeviceRuntime::get().get_mk_alignment();
    GemmCall call;
    call.kind = use_psum_layout ? kGemmKindMPsum : kGemmKindMContiguous;
    call.a = std::move(a), call.b = std::move(b);
    call.d = d.unsqueeze(0);
    call.m = m, call.n = n, call.k = call.a.k, call.num_groups = groups;
    call.grouped_layout = grouped_layout;
    call.max_block_m = max_block_m_for_alignment(fn, alignment);
    call.plan_m = expected_m.has_value() and *expected_m > 0 ? *expected_m : std::max<int64_t>(1, m / groups);
    call.total_m = m;
    call.zero_padding = use_psum_layout and ensure_zero_padding;
    run_gemm(fn, call);
}

inline void m_grouped_masked(const char* fn, const py::object& a_obj, const py::object& b_obj, const torch::Tensor& d,
                             const torch::Tensor& masked_m, int64_t expected_m, const py::object& recipe,
                             const py::object& recipe_a, const py::object& recipe_b, bool bf16) {
    auto [a, b] = grouped_operands(fn, a_obj, b_obj, recipe, recipe_a, recipe_b, true, false, bf16);
    check_k(fn, a, b);
    if (not bf16)
        check_combo(fn, a, b);
    const int64_t groups = b.data.size(0), max_m = a.mn, n = b.mn;
    check_output(fn, d, a.data.device(), {torch::kBFloat16}, {groups, max_m, n});
    const ArgCheck chk{fn};
    chk.on_device(masked_m, "masked_m", a.data.device());
    chk.dtype(masked_m, "masked_m", torch::kInt);
    chk.contiguous(masked_m, "masked_m");
    DG_CHECK(masked_m.dim() == 1 and masked_m.size(0) == groups, fn, ": `masked_m` must be [G] = [", groups,
             "]; got ", describe(masked_m));
    DG_CHECK(expected_m >= 0, fn, ": `expected_m` must be >= 0; got ", expected_m);
    if (max_m == 0 or n == 0)
        return;
    GemmCall call;
    call.kind = kGemmKindMMasked;
    call.a = std::move(a), call.b = std::move(b);
    call.d = d;
    call.m = max_m, call.n = n, call.k = call.a.k, call.num_groups = groups;
    call.grouped_layout = masked_m;
    call.plan_m = std::max<int64_t>(1, std::min(expected_m, max_m));
    run_gemm(fn, call);
}

// ------------------------------------------------------------------------------------------------- k-grouped

// D[g] = C[g] + A_gᵀ · B_g over group g's K rows: `a` [sum K, M], `b` [sum K, N] ("tn", MN-major per group), or the
// SM90 "nt" form: per group K-major blocks [M, K_g] / [N, K_g] flattened one after another
inline void k_grouped(const char* fn, const py::object& a_obj, const py::object& b_obj, const torch::Tensor& d,
                      const py::object& ks_obj, const torch::Tensor& ks_tensor, const std::optional<torch::Tensor>& c,
                      const py::object& recipe, bool use_psum_layout, bool nt_form, bool bf16) {
    DG_CHECK(not use_psum_layout, fn, ": `use_psum_layout=True` (SM100-only upstream) is not supported on this build");
    const ArgCheck chk{fn};
    // ks: the host list of per-group K
    std::vector<int64_t> ks;
    if (not ks_obj.is_none())
        ks = ints_of(fn, "ks", ks_obj);
    DG_CHECK(d.dim() == 3, fn, ": `d` must be 3-D [G, M, N]; got ", describe(d));
    const int64_t groups = d.size(0), m = d.size(1), n = d.size(2);
    DG_CHECK(static_cast<int64_t>(ks.size()) == groups, fn, ": `ks` must list K for each of the G = ", groups,
             " groups of `d`; got ", ks.size(), " values");
    int64_t total_k = 0;
    for (const auto k: ks) {
        DG_CHECK(k >= 0 and k % (bf16 ? 8 : 16) == 0, fn, ": every K in `ks` must be a non-negative multiple of ",
                 bf16 ? 8 : 16, "; got ", cat(ks));
        total_k += k;
    }
    chk.on_device(ks_tensor, "grouped_layout", d.device());
    chk.dtype(ks_tensor, "grouped_layout", torch::kInt);
    chk.contiguous(ks_tensor, "grouped_layout");
    DG_CHECK(ks_tensor.dim() == 1 and ks_tensor.size(0) == groups, fn, ": `grouped_layout` (the per-group K on the "
             "device) must be [G] = [", groups, "]; got ", describe(ks_tensor));
    torch::Tensor a_t, sfa, b_t, sfb;
    if (bf16) {
        a_t = a_obj.cast<torch::Tensor>(), b_t = b_obj.cast<torch::Tensor>();
    } else {
        std::tie(a_t, sfa) = parse_pair(fn, "a", a_obj);
        std::tie(b_t, sfb) = parse_pair(fn, "b", b_obj);
    }
    chk.cuda(a_t, "a"), chk.on_device(b_t, "b", d.device()), chk.on_device(a_t, "a", d.device());
    // Both forms become K-major [M, sum K] / [N, sum K] with group g at column offset sum(ks[:g])
    const auto to_k_major = [&](const torch::Tensor& t, int64_t mn, const char* arg) {
        if (not nt_form) {
            DG_CHECK(t.dim() == 2 and t.size(0) == total_k and t.size(1) == mn, fn, ": `", arg, "` must be [sum(ks), ",
                     mn, "] = [", total_k, ", ", mn, "]; got ", describe(t));
            return t.t();
        }
        DG_CHECK(t.dim() == 1 and t.numel() == total_k * mn, fn, ": `", arg, "` must be the flat concatenation of the "
                 "groups' K-major [", mn, ", K_g] blocks (", total_k * mn, " elements); got ", describe(t));
        auto out = torch::empty({mn, total_k}, t.options());
        int64_t k0 = 0;
        for (const auto k: ks) {
            if (k > 0)
                out.narrow(1, k0, k).copy_(t.narrow(0, k0 * mn, k * mn).view({mn, k}));
            k0 += k;
        }
        return out;
    };
    a_t = to_k_major(a_t, m, "a"), b_t = to_k_major(b_t, n, "b");
    check_output(fn, d, a_t.device(), {torch::kFloat}, {groups, m, n});
    check_accumulator(fn, c, d);
    GemmCall call;
    if (bf16) {
        call.a = bf16_operand(fn, "a", a_t, 1), call.b = bf16_operand(fn, "b", b_t, 1);
    } else {
        const auto [gran_a, gran_b] = parse_recipes(fn, recipe, py::none(), py::none());
        DG_CHECK(gran_a.k == gran_b.k and gran_a.mn == 1 and gran_b.mn == 1, fn, ": k-grouped scales are per channel "
                 "with one K block for both operands: `recipe` must be (1, 1, 128) or (1, 1, 32)");
        chk.on_device(sfa, "a[1]", d.device()), chk.on_device(sfb, "b[1]", d.device());
        const bool packed = sfa.scalar_type() == torch::kInt;
        DG_CHECK((sfb.scalar_type() == torch::kInt) == packed, fn, ": `a[1]` and `b[1]` must both be float32 or both "
                 "packed UE8M0 int32; got ", describe(sfa), " and ", describe(sfb));
        int64_t rows = 0;
        for (const auto k: ks) {
            const int64_t blocks = (k + gran_a.k - 1) / gran_a.k;
            rows += packed ? (blocks + 3) / 4 : blocks;
        }
        // Scales: [sum_g rows_g, MN] (K-block rows of each group stacked, upstream 2.6), or its transpose [MN, sum_g
        // rows_g] (NVIDIA's SM120 tests pass `sf.T`); square: the dimension with unit stride is MN, as both store it
        const auto sf_view = [&](const torch::Tensor& sf, const char* arg, int64_t mn) {
            DG_CHECK(sf.dim() == 2 and ((sf.size(0) == rows and sf.size(1) == mn) or
                                        (sf.size(0) == mn and sf.size(1) == rows)), fn, ": `", arg,
                     "` must be [sum of the groups' K blocks, ", mn, "] = [", rows, ", ", mn, "] (or its transpose [",
                     mn, ", ", rows, "]); got ", describe(sf));
            const bool transposed = sf.size(1) != mn or (rows == mn and sf.size(0) > 1 and sf.stride(0) == 1 and
                                                         sf.stride(1) != 1);
            return transposed ? sf.t() : sf;
        };
        sfa = sf_view(sfa, "a[1]", m), sfb = sf_view(sfb, "b[1]", n);
        // (`sf` is [rows, MN] here: sf_view checked it)
        const auto make = [&](const torch::Tensor& t, const torch::Tensor& sf, const char* arg) {
            Operand op;
            op.type = dtype_code(fn, arg, t, false);
            DG_CHECK(op.type == kGemmDtypeFp8, fn, ": `", arg, "` must be torch.float8_e4m3fn; got ", describe(t));
            op.data = k_major(fn, arg, t.unsqueeze(0), op.type);
            op.mn = t.size(0), op.k = total_k;
            op.sf = sf.t().unsqueeze(0), op.sf_type = packed ? kGemmSfUE8M0 : kGemmSfFloat;
            op.gran_mn = 1, op.gran_k = gran_a.k;
            return op;
        };
        call.a = make(a_t, sfa, "a[0]"), call.b = make(b_t, sfb, "b[0]");
        check_combo(fn, call.a, call.b);
    }
    if (m == 0 or n == 0)
        return;
    call.kind = kGemmKindKGrouped;
    call.d = d;
    if (c.has_value())
        call.c = *c;
    call.m = m, call.n = n, call.k = total_k, call.num_groups = groups;
    call.grouped_layout = ks_tensor;
    run_gemm(fn, call);
}

inline void register_grouped_apis(py::module_& m) {
    for (const auto& [name, alias, tb]: {std::tuple{"m_grouped_fp8_fp4_gemm_nt_contiguous",
                                                    "m_grouped_fp8_gemm_nt_contiguous", false},
                                         std::tuple{"m_grouped_fp8_fp4_gemm_nn_contiguous",
                                                    "m_grouped_fp8_gemm_nn_contiguous", true}}) {
        for (const char* fn: {name, alias}) {
            m.def(fn, [fn, tb](const py::object& a, const py::object& b, const torch::Tensor& d,
                               const torch::Tensor& grouped_layout, const py::object& recipe, const py::object& recipe_a,
                               const py::object& recipe_b, const std::string&, bool, bool use_psum_layout,
                               bool ensure_zero_padding, const std::optional<int64_t>& expected_m) {
                      m_grouped_contiguous(fn, a, b, d, grouped_layout, recipe, recipe_a, recipe_b, use_psum_layout,
                                           ensure_zero_padding, expected_m, tb, false);
                  },
                  py::arg("a"), py::arg("b"), py::arg("d"), py::arg("grouped_layout"), py::arg("recipe") = py::none(),
                  py::arg("recipe_a") = py::none(), py::arg("recipe_b") = py::none(), py::arg("compiled_dims") = "nk",
                  py::arg("disable_ue8m0_cast") = false, py::arg("use_psum_layout") = false,
                  py::arg("ensure_zero_padding") = true, py::arg("expected_m_for_psum_layout") = py::none());
        }
    }
    for (const char* fn: {"m_grouped_fp8_fp4_gemm_nt_masked", "m_grouped_fp8_gemm_nt_masked",
                          "fp8_m_grouped_gemm_nt_masked"}) {
        m.def(fn, [fn](const py::object& a, const py::object& b, const torch::Tensor& d, const torch::Tensor& masked_m,
                       int64_t expected_m, const py::object& recipe, const py::object& recipe_a,
                       const py::object& recipe_b, const std::string&, bool) {
                  m_grouped_masked(fn, a, b, d, masked_m, expected_m, recipe, recipe_a, recipe_b, false);
              },
              py::arg("a"), py::arg("b"), py::arg("d"), py::arg("masked_m"), py::arg("expected_m"),
              py::arg("recipe") = py::none(), py::arg("recipe_a") = py::none(), py::arg("recipe_b") = py::none(),
              py::arg("compiled_dims") = "nk", py::arg("disable_ue8m0_cast") = false);
    }
    for (const auto& [fn, nt]: {std::pair{"k_grouped_fp8_gemm_tn_contiguous", false},
                                std::pair{"k_grouped_fp8_gemm_nt_contiguous", true}}) {
        m.def(fn, [fn = fn, nt = nt](const py::object& a, const py::object& b, const torch::Tensor& d,
                                     const py::object& ks, const torch::Tensor& grouped_layout,
                                     const std::optional<torch::Tensor>& c, const py::object& recipe,
                                     const std::string&, bool use_psum_layout) {
                  k_grouped(fn, a, b, d, ks, grouped_layout, c, recipe, use_psum_layout, nt, false);
              },
              py::arg("a"), py::arg("b"), py::arg("d"), py::arg("ks"), py::arg("grouped_layout"),
              py::arg("c") = py::none(), py::arg("recipe") = py::make_tuple(1, 1, 128),
              py::arg("compiled_dims") = "mn", py::arg("use_psum_layout") = false);
    }
}

// ------------------------------------------------------------------------------------------------- BF16

inline void bf16_gemm(const char* fn, const torch::Tensor& a_in, const torch::Tensor& b_in, const torch::Tensor& d,
                      const std::optional<torch::Tensor>& c, bool transpose_a, bool transpose_b) {
    const ArgCheck chk{fn};
    chk.cuda(a_in, "a");
    DG_CHECK(a_in.dim() == 2 and b_in.dim() == 2, fn, ": `a` and `b` must be 2-D; got ", describe(a_in), " and ",
             describe(b_in));
    chk.on_device(b_in, "b", a_in.device());
    auto a = bf16_operand(fn, "a", transpose_a ? a_in.t() : a_in, 1);
    auto b = bf16_operand(fn, "b", transpose_b ? b_in.t() : b_in, 1);
    check_k(fn, a, b);
    check_output(fn, d, a.data.device(), {torch::kBFloat16, torch::kFloat}, {a.mn, b.mn});
    check_accumulator(fn, c, d);
    if (a.mn == 0 or b.mn == 0)
        return;
    run_gemm(fn, gemm_call(std::move(a), std::move(b), d.unsqueeze(0),
                           c.has_value() ? std::optional{c->unsqueeze(0)} : std::nullopt));
}

inline void register_bf16_apis(py::module_& m) {
    for (const auto& [fn, ta, tb]: {std::tuple{"bf16_gemm_nt", false, false}, std::tuple{"bf16_gemm_nn", false, true},
                                    std::tuple{"bf16_gemm_tn", true, true}, std::tuple{"bf16_gemm_tt", true, false}}) {
        m.def(fn, [fn = fn, ta = ta, tb = tb](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                                              const std::optional<torch::Tensor>& c, const std::string&) {
                  bf16_gemm(fn, a, b, d, c, ta, tb);
              },
              py::arg("a"), py::arg("b"), py::arg("d"), py::arg("c") = py::none(),
              py::arg("compiled_dims") = (ta ? "mn" : "nk"));
    }
    for (const auto& [fn, tb]: {std::pair{"m_grouped_bf16_gemm_nt_contiguous", false},
                                std::pair{"m_grouped_bf16_gemm_nn_contiguous", true}}) {
        m.def(fn, [fn = fn, tb = tb](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                                     const torch::Tensor& grouped_layout, const std::string&, bool use_psum_layout,
                                     bool ensure_zero_padding, const std::optional<int64_t>& expected_m) {
                  m_grouped_contiguous(fn, py::cast(a), py::cast(b), d, grouped_layout, py::none(), py::none(),
                                       py::none(), use_psum_layout, ensure_zero_padding, expected_m, tb, true);
              },
              py::arg("a"), py::arg("b"), py::arg("d"), py::arg("grouped_layout"), py::arg("compiled_dims") = "nk",
              py::arg("use_psum_layout") = false, py::arg("ensure_zero_padding") = true,
              py::arg("expected_m_for_psum_layout") = py::none());
    }
    for (const char* fn: {"m_grouped_bf16_gemm_nt_masked", "bf16_m_grouped_gemm_nt_masked"}) {
        m.def(fn, [fn](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                       const torch::Tensor& masked_m, int64_t expected_m, const std::string&) {
                  m_grouped_masked(fn, py::cast(a), py::cast(b), d, masked_m, expected_m, py::none(), py::none(),
                                   py::none(), true);
              },
              py::arg("a"), py::arg("b"), py::arg("d"), py::arg("masked_m"), py::arg("expected_m"),
              py::arg("compiled_dims") = "nk");
    }
    m.def("k_grouped_bf16_gemm_tn_contiguous",
          [](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d, const py::object& ks,
             const torch::Tensor& grouped_layout, const std::optional<torch::Tensor>& c, const std::string&,
             bool use_psum_layout) {
              k_grouped("k_grouped_bf16_gemm_tn_contiguous", py::cast(a), py::cast(b), d, ks, grouped_layout, c,
                        py::none(), use_psum_layout, false, true);
          },
          py::arg("a"), py::arg("b"), py::arg("d"), py::arg("ks"), py::arg("grouped_layout"), py::arg("c") = py::none(),
          py::arg("compiled_dims") = "mn", py::arg("use_psum_layout") = false);
}

// ------------------------------------------------------------------------------------------------- einsum

// D = A · Bᵀ batched over heads: `a_v` [H, rows, K], `b_v` [H, N, K], `d_v` [H, rows, N] (views, any strides)
inline void batched_gemm(const char* fn, Operand a, Operand b, const torch::Tensor& d_v,
                         const std::optional<torch::Tensor>& c_v, bool allow_split_k = true) {
    check_k(fn, a, b);
    if (a.mn == 0 or b.mn == 0 or d_v.size(0) == 0)
        return;
    auto call = gemm_call(std::move(a), std::move(b), d_v, c_v);
    call.allow_split_k = allow_split_k;
    run_gemm(fn, call);
}

inline void check_einsum_output(const char* fn, const torch::Tensor& d, const torch::Tensor& like,
                                std::vector<int64_t> shape, std::initializer_list<at::ScalarType> dtypes) {
    check_output(fn, d, like.device(), dtypes, std::move(shape));
}

inline void einsum(const std::string& expr, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                   const std::optional<torch::Tensor>& c, bool use_cublaslt) {
    constexpr const char* fn = "einsum";
    const ArgCheck chk{fn};
    chk.cuda(a, "a"), chk.on_device(b, "b", a.device());
    chk.dtype(a, "a", torch::kBFloat16), chk.dtype(b, "b", torch::kBFloat16);
    if (use_cublaslt) {
        // cuBLAS through torch, for comparison (upstream's `use_cublaslt`)
        auto out = torch::einsum(expr, {a, b});
        if (c.has_value())
            out = out.to(torch::kFloat) + c->to(torch::kFloat);
        d.copy_(out);
        return;
    }
    if (expr == "bmk,bnk->mn") {
        DG_CHECK(a.dim() == 3 and b.dim() == 3 and a.size(0) == b.size(0) and a.size(2) == b.size(2), fn, ": '", expr,
                 "' needs `a` [B, M, K] and `b` [B, N, K]; got ", describe(a), " and ", describe(b));
        const int64_t k = a.size(2);
        DG_CHECK(k % 64 == 0, fn, ": '", expr, "' needs K a multiple of 64; got K = ", k);
        check_einsum_output(fn, d, a, {a.size(1), b.size(1)}, {torch::kFloat, torch::kBFloat16});
        check_accumulator(fn, c, d);
        auto ao = bf16_operand(fn, "a", a.contiguous(), a.size(0));
        auto bo = bf16_operand(fn, "b", b.contiguous(), b.size(0));
        if (a.size(1) == 0 or b.size(1) == 0)
            return;
        GemmCall call;
        call.a = std::move(ao), call.b = std::move(bo);
        call.a.k = call.b.k = k * a.size(0);
        call.d = d.unsqueeze(0);
        if (c.has_value())
            call.c = c->unsqueeze(0);
        call.m = a.size(1), call.n = b.size(1), call.k = k * a.size(0);
        call.k_batch = k, call.bmk_name = true;
        if (call.k == 0) {
            d.copy_(c.has_value() ? *c : torch::zeros_like(d));
            return;
        }
        run_gemm(fn, call);
        return;
    }
    DG_CHECK(expr == "bhr,hdr->bhd" or expr == "bhd,hdr->bhr", fn, ": `expr` must be 'bmk,bnk->mn', 'bhr,hdr->bhd' or "
             "'bhd,hdr->bhr'; got '", expr, "'");
    DG_CHECK(a.dim() == 3 and b.dim() == 3 and a.size(1) == b.size(0), fn, ": '", expr, "' needs `a` [B, H, *] and `b` "
             "[H, *, *] with the same H; got ", describe(a), " and ", describe(b));
    DG_CHECK(not c.has_value(), fn, ": `c` is only supported with 'bmk,bnk->mn'");
    const bool second = expr == "bhd,hdr->bhr";
    // Heads are the batch: A_h = a[:, h, :] [B, K], B_h = b[h] ([N, K], transposed for the second form)
    const auto bv = second ? b.transpose(1, 2) : b;
    DG_CHECK(a.size(2) == bv.size(2), fn, ": the contracted dims of `a` and `b` differ: ", describe(a), " and ",
             describe(b));
    check_einsum_output(fn, d, a, {a.size(0), a.size(1), bv.size(1)}, {torch::kBFloat16});
    // No K splits: each output's FP32 sum runs over K in order, as cuBLAS's does, so the BF16 results equal
    // torch.einsum's (upstream's test compares them at calc_diff < 1e-10, i.e. practically bit for bit)
    batched_gemm(fn, bf16_operand(fn, "a", a.permute({1, 0, 2}), a.size(1)), bf16_operand(fn, "b", bv, b.size(0)),
                 d.permute({1, 0, 2}), std::nullopt, /*allow_split_k=*/false);
}

inline void fp8_einsum(const std::string& expr, const py::object& a_obj, const py::object& b_obj,
                       const torch::Tensor& d, const std::optional<torch::Tensor>& c, const py::object& recipe) {
    constexpr const char* fn = "fp8_einsum";
    auto [a, sfa] = parse_pair(fn, "a", a_obj);
    auto [b, sfb] = parse_pair(fn, "b", b_obj);
    const ArgCheck chk{fn};
    chk.cuda(a, "a[0]"), chk.on_device(b, "b[0]", a.device());
    DG_CHECK(a.dim() == 3 and b.dim() == 3, fn, ": `a[0]` and `b[0]` must be 3-D; got ", describe(a), " and ",
             describe(b));
    auto [gran_a, gran_b] = parse_recipes(fn, recipe, py::none(), py::none());
    if (expr == "bhr,hdr->bhd" or expr == "bhd,hdr->bhr") {
        DG_CHECK(a.size(1) == b.size(0), fn, ": '", expr, "' needs `a` [B, H, *] and `b` [H, *, *] with the same H; got ",
                 describe(a), " and ", describe(b));
        DG_CHECK(not c.has_value(), fn, ": `c` is only supported with 'bhd,bhr->hdr'");
        const bool second = expr == "bhd,hdr->bhr";
        // A_h = a[:, h, :] with scales sfa[:, h, :]; B_h = b[h] (transposed for the second form) with its block scales
        DG_CHECK(sfa.dim() == 3 and sfb.dim() == 3, fn, ": `a[1]` and `b[1]` must be 3-D; got ", describe(sfa), " and ",
                 describe(sfb));
        const auto bv = second ? b.transpose(1, 2) : b;
        const auto sfbv = second ? sfb.transpose(1, 2) : sfb;
        // fp8_einsum's recipe (1, 128, 128) names A per row and B in 128-row blocks
        gran_a.mn = gran_a.mn == 0 ? 1 : gran_a.mn;
        auto ao = quant_operand(fn, "a[0]", "a[1]", a.permute({1, 0, 2}), sfa.permute({1, 0, 2}), a.size(1), gran_a,
                                false);
        auto bo = quant_operand(fn, "b[0]", "b[1]", bv, sfbv, b.size(0), gran_b, true);
        check_combo(fn, ao, bo);
        check_einsum_output(fn, d, a, {a.size(0), a.size(1), bo.mn}, {torch::kBFloat16});
        batched_gemm(fn, std::move(ao), std::move(bo), d.permute({1, 0, 2}), std::nullopt);
        return;
    }
    DG_CHECK(expr == "bhd,bhr->hdr", fn, ": `expr` must be 'bhr,hdr->bhd', 'bhd,hdr->bhr' or 'bhd,bhr->hdr'; got '",
             expr, "'");
    // hdr[h] = a[:, h, :]ᵀ · b[:, h, :] summed over b: A_h = a[:, h, :]ᵀ [D, B] (MN-major), scales [B/128, H, D]
    DG_CHECK(a.size(0) == b.size(0) and a.size(1) == b.size(1), fn, ": 'bhd,bhr->hdr' needs `a` [B, H, D] and `b` "
             "[B, H, R]; got ", describe(a), " and ", describe(b));
    DG_CHECK(sfa.dim() == 3 and sfb.dim() == 3, fn, ": `a[1]` and `b[1]` must be 3-D [ceil(B/128), H, *]; got ",
             describe(sfa), " and ", describe(sfb));
    auto ao = quant_operand(fn, "a[0]", "a[1]", a.permute({1, 2, 0}), sfa.permute({1, 2, 0}), a.size(1), gran_a, false);
    auto bo = quant_operand(fn, "b[0]", "b[1]", b.permute({1, 2, 0}), sfb.permute({1, 2, 0}), b.size(1), gran_b, true);
    check_combo(fn, ao, bo);
    check_einsum_output(fn, d, a, {a.size(1), a.size(2), b.size(2)}, {torch::kFloat, torch::kBFloat16});
    check_accumulator(fn, c, d);
    batched_gemm(fn, std::move(ao), std::move(bo), d, c);
}

// ------------------------------------------------------------------------------------------------- cuBLASLt

// torch's `_scaled_mm` (cuBLASLt's FP8 GEMM) with unit tensorwise scales and no fast accumulation. Its schema changed
// across the torch versions we support (2.4: optional scales after `bias`, two outputs; 2.5 and later: the scales
// first, one output), so it is called boxed: each argument's role is read from the schema once, by name
inline torch::Tensor scaled_mm_unit_scales(const torch::Tensor& a, const torch::Tensor& b, at::ScalarType out_dtype) {
    enum class Role { kA, kB, kScale, kOutDtype, kFastAccum, kDefault };
    struct Schema {
        c10::OperatorHandle op;
        std::vector<std::pair<Role, c10::IValue>> args;     // the role, and the default value of kDefault ones
    };
    static const Schema schema = [] {
        Schema s{c10::Dispatcher::singleton().findSchemaOrThrow("aten::_scaled_mm", ""), {}};
        for (const auto& arg: s.op.schema().arguments()) {
            const auto& name = arg.name();
            const Role role = name == "self" ? Role::kA : name == "mat2" ? Role::kB :
                              name == "scale_a" or name == "scale_b" ? Role::kScale :
                              name == "out_dtype" ? Role::kOutDtype : name == "use_fast_accum" ? Role::kFastAccum :
                              Role::kDefault;
            DG_RUNTIME_CHECK(role != Role::kDefault or arg.default_value().has_value(), "deep_gemm: torch's _scaled_mm "
                             "has an argument `", name, "` this build does not know (no default value)");
            s.args.emplace_back(role, role == Role::kDefault ? *arg.default_value() : c10::IValue());
        }
        return s;
    }();
    const auto unit = torch::ones({}, torch::TensorOptions().dtype(torch::kFloat).device(a.device()));
    std::vector<c10::IValue> stack;
    stack.reserve(schema.args.size());
    for (const auto& [role, value]: schema.args) {
        switch (role) {
            case Role::kA: stack.emplace_back(a); break;
            case Role::kB: stack.emplace_back(b); break;
            case Role::kScale: stack.emplace_back(unit); break;
            case Role::kOutDtype: stack.emplace_back(out_dtype); break;
            case Role::kFastAccum: stack.emplace_back(false); break;
            case Role::kDefault: stack.emplace_back(value); break;
        }
    }
    schema.op.callBoxed(&stack);
    return stack.at(0).toTensor();
}

// cuBLAS through torch: FP32 math (inputs widened exactly) when `d` is FP32, so results keep FP32 precision;
// D = A · Bᵀ (+ C) in the nt/nn/tn/tt layouts of the other GEMMs
inline void cublaslt_gemm(const char* fn, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                          const std::optional<torch::Tensor>& c, bool transpose_a, bool transpose_b) {
    const ArgCheck chk{fn};
    chk.cuda(a, "a"), chk.on_device(b, "b", a.device());
    DG_CHECK(a.dim() == 2 and b.dim() == 2, fn, ": `a` and `b` must be 2-D; got ", describe(a), " and ", describe(b));
    chk.dtype_one_of(a, "a", {torch::kBFloat16, torch::kFloat8_e4m3fn, torch::kFloat, torch::kHalf});
    chk.dtype_one_of(b, "b", {torch::kBFloat16, torch::kFloat8_e4m3fn, torch::kFloat, torch::kHalf});
    const auto lhs = transpose_a ? a.t() : a;           // [M, K]
    const auto rhs = transpose_b ? b : b.t();           // [K, N]
    DG_CHECK(lhs.size(1) == rhs.size(0), fn, ": `a` and `b` must share K; got ", describe(a), " and ", describe(b));
    chk.on_device(d, "d", a.device());
    chk.dtype_one_of(d, "d", {torch::kBFloat16, torch::kFloat});
    DG_CHECK(d.dim() == 2 and d.size(0) == lhs.size(0) and d.size(1) == rhs.size(1), fn, ": `d` must be [",
             lhs.size(0), ", ", rhs.size(1), "]; got ", describe(d));
    if (c.has_value()) {
        chk.on_device(*c, "c", a.device());
        DG_CHECK(c->sizes() == d.sizes(), fn, ": `c` must have the shape of `d`; got ", describe(*c));
    }
    const auto wide = [](const torch::Tensor& t) { return t.scalar_type() == torch::kFloat ? t : t.to(torch::kFloat); };
    // FP8 x FP8: cuBLASLt's FP8 GEMM (torch's `_scaled_mm` with unit scales; FP32 accumulation, no fast accumulation),
    // as upstream calls it; it needs K and N multiples of 16 (FP32 math on the widened inputs otherwise)
    const bool fp8_in = a.scalar_type() == torch::kFloat8_e4m3fn and b.scalar_type() == torch::kFloat8_e4m3fn;
    if (fp8_in and lhs.size(1) % 16 == 0 and rhs.size(1) % 16 == 0 and lhs.size(0) > 0 and rhs.size(1) > 0 and
        lhs.size(1) > 0) {
        const auto row_major = lhs.is_contiguous() ? lhs : lhs.contiguous();
        const auto col_major = rhs.t().is_contiguous() ? rhs : rhs.t().contiguous().t();
        const bool direct = d.scalar_type() == torch::kBFloat16 and not c.has_value();
        auto out = scaled_mm_unit_scales(row_major, col_major, direct ? torch::kBFloat16 : torch::kFloat);
        if (c.has_value())
            out.add_(wide(*c));
        d.copy_(out);
        return;
    }
    const bool bf16_in = a.scalar_type() == torch::kBFloat16 and b.scalar_type() == torch::kBFloat16;
    if (bf16_in and d.scalar_type() == torch::kBFloat16 and not c.has_value()) {
        d.copy_(torch::matmul(lhs, rhs));
        return;
    }
    // BF16 x BF16 with an FP32 result: cuBLASLt's BF16 GEMM with FP32 output (torch's `mm.dtype` / `addmm.dtype`,
    // torch >= 2.8), as upstream calls it; older torch: FP32 math on the widened inputs (exact products, FP32 sums)
    using MmDtype = at::Tensor(const at::Tensor&, const at::Tensor&, at::ScalarType);
    using AddmmDtype = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::ScalarType,
                                  const at::Scalar&, const at::Scalar&);
    static const auto mm_dtype = c10::Dispatcher::singleton().findSchema({"aten::mm", "dtype"});
    static const auto addmm_dtype = c10::Dispatcher::singleton().findSchema({"aten::addmm", "dtype"});
    torch::Tensor out;
    if (bf16_in and mm_dtype.has_value() and addmm_dtype.has_value()) {
        out = c.has_value() ? addmm_dtype->typed<AddmmDtype>().call(wide(*c), lhs, rhs, torch::kFloat, 1, 1)
                            : mm_dtype->typed<MmDtype>().call(lhs, rhs, torch::kFloat);
    } else {
        out = c.has_value() ? torch::addmm(wide(*c), wide(lhs), wide(rhs)) : torch::matmul(wide(lhs), wide(rhs));
    }
    d.copy_(out);
}

inline void register_einsum_apis(py::module_& m) {
    m.def("einsum", &einsum, py::arg("expr"), py::arg("a"), py::arg("b"), py::arg("d"), py::arg("c") = py::none(),
          py::arg("use_cublaslt") = false);
    m.def("fp8_einsum", &fp8_einsum, py::arg("expr"), py::arg("a"), py::arg("b"), py::arg("d"), py::arg("c") = py::none(),
          py::arg("recipe") = py::make_tuple(1, 128, 128));
    // Test-only: the boxed `_scaled_mm` call on any device torch has a kernel for (tests/test_validation_cpu.py runs
    // it on the CPU, so every torch version's schema is exercised without a GPU); `b` is [K, N] column-major
    m.def("_scaled_mm_unit_scales", [](const torch::Tensor& a, const torch::Tensor& b, bool fp32_out) {
              return scaled_mm_unit_scales(a, b, fp32_out ? torch::kFloat : torch::kBFloat16);
          },
          py::arg("a"), py::arg("b"), py::arg("fp32_out"));
    for (const auto& [fn, ta, tb]: {std::tuple{"cublaslt_gemm_nt", false, false},
                                    std::tuple{"cublaslt_gemm_nn", false, true},
                                    std::tuple{"cublaslt_gemm_tn", true, true},
                                    std::tuple{"cublaslt_gemm_tt", true, false}}) {
        m.def(fn, [fn = fn, ta = ta, tb = tb](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d,
                                              const std::optional<torch::Tensor>& c) {
                  cublaslt_gemm(fn, a, b, d, c, ta, tb);
              },
              py::arg("a"), py::arg("b"), py::arg("d"), py::arg("c") = py::none());
    }
}

// ------------------------------------------------------------------------------------------------- cross-check

inline MmaCheckResult cross_check_gemm(const GemmConfig& candidate, int device, cudaStream_t stream,
                                       bool inject_fault) {
    // A normal GEMM with the candidate's operand types, K granules and tile over a ragged shape, with random power-of-
    // two scales that are not 1 (packed UE8M0 for the HW form, float32 otherwise); the twin is the same config through
    // Promote with the plain MMA
    GemmConfig cand = candidate;
    cand.kind = kGemmKindNormal, cand.bmk_name = false;
    GemmConfig twin = cand;
    twin.hw_scales = twin.fast_mma = false;
    const int64_t m = cand.block_m + 13, n = cand.block_n + 24, k = 5 * 128;
    auto gen = at::detail::createCPUGenerator(0x9e3d);
    const auto dev = torch::TensorOptions().device(torch::kCUDA, device);
    const bool packed = cand.hw_scales;
    const auto values = [&](int64_t rows, int type) {
        if (type == kGemmDtypeFp4)
            return torch::randint(-128, 128, {1, rows, k / 2}, gen, torch::kLong).to(dev.dtype(torch::kChar));
        return torch::randn({1, rows, k}, gen, torch::kFloat).to(dev.dtype(torch::kFloat8_e4m3fn));
    };
    const auto scales = [&](int64_t rows, int gran_k) {
        const int64_t blocks = (k + gran_k - 1) / gran_k;
        if (packed) {
            const int64_t ints = (blocks + 3) / 4;
            return torch::randint(120, 135, {1, rows, ints * 4}, gen, torch::kLong).to(torch::kByte).contiguous()
                .view(torch::kInt).to(dev.dtype(torch::kInt));
        }
        const auto e = torch::randint(-6, 7, {1, rows, blocks}, gen, torch::kLong).to(torch::kFloat);
        return torch::pow(2.0, e).to(dev.dtype(torch::kFloat));
    };
    Operand a, b;
    a.type = cand.type_a, b.type = cand.type_b;
    a.data = values(m, a.type), b.data = values(n, b.type);
    a.mn = m, b.mn = n, a.k = b.k = k;
    a.sf_type = b.sf_type = packed ? kGemmSfUE8M0 : kGemmSfFloat;
    a.gran_k = cand.sf_gran_k_a, b.gran_k = cand.sf_gran_k_b, a.gran_mn = b.gran_mn = 1;
    a.sf = scales(m, a.gran_k), b.sf = scales(n, b.gran_k);
    std::vector<torch::Tensor> outs;
    for (const GemmConfig* cfg: {static_cast<const GemmConfig*>(&cand), static_cast<const GemmConfig*>(&twin)}) {
        GemmCall call;
        call.a = a, call.b = b;
        call.d = torch::zeros({1, m, n}, dev.dtype(torch::kFloat));
        call.m = m, call.n = n, call.k = k;
        run_gemm("sm120_gemm cross-check", call, cfg);
        outs.push_back(call.d);
    }
    return compare_mma_outputs(outs[0], outs[1], inject_fault, 1e-5);
}

// Internal: the plan of a GEMM shape on a compile target (no GPU needed), for CPU tests of the heuristics
// (`m` is the rows per group the M tile is planned for; `total_m` the rows of all groups of a contiguous layout, 0: m)
inline py::dict gemm_plan(const std::string& target, int kind, int64_t m, int64_t n, int64_t k, int64_t num_groups,
                          int type_a, int type_b, int gran_k_a, int gran_k_b, int max_block_m, bool sm120_mode,
                          const std::optional<int64_t>& num_sms, int64_t total_m) {
    constexpr const char* fn = "_gemm_plan";
    DG_CHECK(kind >= kGemmKindNormal and kind <= kGemmKindKGrouped, fn, ": `kind` must be in [0, 4]; got ", kind);
    DG_CHECK(m >= 1 and n >= 1 and k >= 0 and num_groups >= 1, fn, ": shape must be positive; got m=", m, " n=", n,
             " k=", k, " groups=", num_groups);
    DG_CHECK(total_m >= 0 and total_m <= std::numeric_limits<int>::max(), fn,
             ": `total_m` must be in [0, 2^31); got ", total_m);
    DG_CHECK(gemm_combo_allowed(type_a, type_b, gran_k_a, gran_k_b), fn, ": unsupported operand combination");
    auto arch = sm120_mode ? with_sm120_planning(arch_spec_for_target(target)) : arch_spec_for_target(target);
    if (num_sms.has_value()) {
        DG_CHECK(*num_sms >= 1 and *num_sms <= 1024, fn, ": `num_sms` must be in [1, 1024]; got ", *num_sms);
        arch.num_sms = static_cast<int>(*num_sms);
    }
    GemmShape shape;
    shape.kind = kind, shape.m = static_cast<int>(m), shape.n = static_cast<int>(n), shape.k = static_cast<int>(k);
    shape.num_groups = static_cast<int>(num_groups), shape.total_m = static_cast<int>(total_m > 0 ? total_m : m);
    shape.type_a = type_a, shape.type_b = type_b, shape.sf_gran_k_a = gran_k_a, shape.sf_gran_k_b = gran_k_b;
    shape.max_block_m = max_block_m;
    const auto t = GemmHeuristics::plan(arch, shape);
    GemmConfig c;
    c.block_m = t.block_m, c.block_n = t.block_n, c.warps_m = t.warps_m, c.warps_n = t.warps_n;
    c.num_stages = t.num_stages, c.kind = kind, c.type_a = type_a, c.type_b = type_b;
    c.sf_gran_k_a = gran_k_a, c.sf_gran_k_b = gran_k_b;
    py::dict out;
    out["block_m"] = t.block_m, out["block_n"] = t.block_n, out["block_k"] = GemmHeuristics::block_k(type_a);
    out["warps"] = t.warps_m * t.warps_n;
    out["num_stages"] = t.num_stages, out["num_splits"] = t.num_splits, out["grid"] = t.grid;
    out["smem_bytes"] = c.smem_bytes(), out["key"] = c.key(), out["num_sms"] = arch.num_sms;
    out["description"] = c.describe();
    return out;
}

inline void register_apis(py::module_& m) {
    m.def("_gemm_plan", &gemm_plan, py::arg("target"), py::arg("kind"), py::arg("m"), py::arg("n"), py::arg("k"),
          py::arg("num_groups") = 1, py::arg("type_a") = 0, py::arg("type_b") = 0, py::arg("gran_k_a") = 128,
          py::arg("gran_k_b") = 128, py::arg("max_block_m") = 128, py::arg("sm120_mode") = false,
          py::arg("num_sms") = py::none(), py::arg("total_m") = 0);
    register_fp8_apis(m);
    register_grouped_apis(m);
    register_bf16_apis(m);
    register_einsum_apis(m);
}

} // namespace deep_gemm::gemm_api
