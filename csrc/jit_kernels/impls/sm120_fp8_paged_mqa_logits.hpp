#pragma once

// Host side of the paged MQA logits family (CONTRACT.md §2.2-2.4): the schedule-metadata kernel
// (`smxx_paged_mqa_logits_metadata.cuh`), the FP8 / FP4 logits kernel (`sm120_fp8_paged_mqa_logits.cuh`), argument
// checks, the cached synchronous value check, and the once-per-config cross-check of the sm_120-only MMA forms
// (through the shared `MmaCrossCheck`).
//
// NOTES: the warm path is kept short: compiled kernels are cached per (config, device) under a packed integer key
// (no source generation or string compare per call), the arch spec per device, and the value check under a
// fixed-size key.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/python.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../../utils/checks.hpp"
#include "../../utils/env_watch.hpp"
#include "../../utils/outputs.hpp"
#include "../heuristics/sm120_paged_mqa_logits.hpp"
#include "../registry.hpp"
#include "sm120_mma_cross_check.hpp"
#include "smxx_clean_logits.hpp"

namespace deep_gemm {

// The kernel's runtime flags (`PagedLogitsFlags` in the .cuh)
constexpr int kPagedContextLens2DFlag = 1, kPagedWeightsBF16Flag = 2, kPagedLogitsBF16Flag = 4,
              kPagedAligned16Flag = 8;

// ---------------------------------------------------------------------------------------------------- configs
// NOTES: up to kRegs requests per thread stay in registers (B <= 4096 with 512 threads); larger B walks each
// thread's segment again. Measured on the H100 (run 8): 2.6 us for B = 4096, vs 5.1 us for the first version
// (1024 threads, four block barriers; removed).
struct PagedMetadataConfig {
    static constexpr int kNumThreads = 512, kRegs = 8;

    static std::string symbol() { return "smxx_paged_mqa_logits_metadata"; }

    static std::string generate() {
        return cat("#include <deep_gemm/impls/smxx_paged_mqa_logits_metadata.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", kNumThreads, ", 1) ", symbol(), "(\n",
                   "        const int* context_lens, int num_requests, long long stride_b, long long stride_t,\n",
                   "        int next_n, int is_2d, int block_kv, int num_sms, int* meta) {\n",
                   "    deep_gemm::smxx_paged_mqa_logits_metadata_impl<", kNumThreads, ", ", kRegs, ">(\n",
                   "        context_lens, num_requests, stride_b, stride_t, next_n, is_2d != 0, block_kv, num_sms, meta);\n",
                   "}\n");
    }
};

struct PagedMQALogitsConfig {
    int num_heads = 64, head_dim = 128, block_kv = 64, num_stages = 2;
    bool fp4 = false;
    bool fast_mma = false;      // FP8: block-scaled with unit scales; FP4: native m16n8k64 (sm_120a/121a only)
    bool q_smem = false;        // portable FP4: q dequantized once per row into a shared-memory region per warp

    // `fast`: the sm_120a/121a-only MMA form; FP4's q placement follows from the form and the shape
    static PagedMQALogitsConfig make(const ArchSpec& arch, int h, int d, int bkv, bool fp4, bool fast) {
        using H = PagedMQALogitsHeuristics;
        PagedMQALogitsConfig c;
        c.num_heads = h, c.head_dim = d, c.block_kv = bkv, c.fp4 = fp4, c.fast_mma = fast;
        c.q_smem = fp4 and H::fp4_q_smem(h, d, fast);
        c.num_stages = H::num_stages(arch, c.row_bytes(), bkv, c.q_bytes());
        return c;
    }

    int q_bytes() const { return q_smem ? PagedMQALogitsHeuristics::q_smem_bytes(num_heads, head_dim) : 0; }
    int row_bytes() const { return fp4 ? head_dim / 2 : head_dim; }
    int num_threads() const { return PagedMQALogitsHeuristics::kNumThreads; }
    std::string symbol() const { return fp4 ? "sm120_fp4_paged_mqa_logits" : "sm120_fp8_paged_mqa_logits"; }
    int smem_bytes() const {
        return PagedMQALogitsHeuristics::smem_bytes(row_bytes(), block_kv, num_stages, q_bytes());
    }

    // A compact identity (everything `generate` depends on)
    uint64_t key() const {
        return static_cast<uint64_t>(num_heads) | static_cast<uint64_t>(head_dim) << 8 |
               static_cast<uint64_t>(block_kv) << 16 | static_cast<uint64_t>(num_stages) << 24 |
               static_cast<uint64_t>(fp4) << 32 | static_cast<uint64_t>(fast_mma) << 33 |
               static_cast<uint64_t>(q_smem) << 34;
    }

    std::string generate() const {
        return cat("#include <deep_gemm/impls/sm120_fp8_paged_mqa_logits.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", num_threads(), ", 1) ", symbol(), "(\n",
                   "        const deep_gemm::uint8_t* q, const int* q_sf, const deep_gemm::uint8_t* kv_cache,\n",
                   "        long long page_stride, int num_pool_pages, const void* weights, long long weights_stride,\n",
                   "        const int* context_lens, long long cl_stride_b, long long cl_stride_t,\n",
                   "        const int* block_table, long long bt_stride, int max_pages, const int* schedule_meta,\n",
                   "        void* logits, long long logits_stride, int num_requests, int next_n, int max_context_len,\n",
                   "        int flags) {\n",
                   "    deep_gemm::sm120_fp8_paged_mqa_logits_impl<", num_heads, ", ", head_dim, ", ", block_kv, ", ",
                   num_stages, ", ", fp4 ? "true" : "false", ", ", fast_mma ? "true" : "false", ", ",
                   q_smem ? "true" : "false", ">(\n",
                   "        q, q_sf, kv_cache, page_stride, num_pool_pages, weights, weights_stride, context_lens,\n",
                   "        cl_stride_b, cl_stride_t, block_table, bt_stride, max_pages, schedule_meta, logits,\n",
                   "        logits_stride, num_requests, next_n, max_context_len, flags);\n",
                   "}\n");
    }

    std::string describe() const {
        const char* form = fp4 ? (fast_mma ? "fp4_native" : "fp4_portable") : (fast_mma ? "block_scaled" : "plain");
        return cat(fp4 ? "FP4" : "FP8", " H=", num_heads, " D=", head_dim, " block_kv=", block_kv, " stages=",
                   num_stages, " mma=", form, q_smem ? " q=smem" : "");
    }

    // sm_90 has no FP8 `mma.sync`: ptxas emulates the plain form (F16 conversions and HMMAs)
    std::vector<std::string> expected_sass(const ArchSpec& arch) const {
        if (fp4)
            return {fast_mma ? "OMMA.SF.16864" : "HMMA.16816.F32.BF16"};
        if (arch.is_sm120_family())
            return {fast_mma ? "QMMA.SF" : "QMMA.16832"};
        if (arch.major == 9)
            return {"HMMA.16816.F32"};
        return {};
    }

    // Every config the heuristics can pick: FP8 with both MMA forms where the block-scaled one exists (the plain
    // form is `DG_SM120_FP8_MMA=plain` and the cross-check's fallback), FP4 with the portable form (q in shared
    // memory for H = 64, D = 128) and, where it exists, the native one
    static std::vector<KernelSpec> enumerate(const ArchSpec& arch) {
        std::vector<KernelSpec> specs;
        specs.push_back({"paged_mqa_logits_metadata", PagedMetadataConfig::symbol(), PagedMetadataConfig::generate(),
                         "metadata", PagedMetadataConfig::kNumThreads, 0, {}});
        std::vector<bool> forms = {false};
        if (arch.block_scaled_mma)
            forms.push_back(true);
        const auto add = [&](const PagedMQALogitsConfig& c) {
            specs.push_back({"paged_mqa_logits", c.symbol(), c.generate(), c.describe(), c.num_threads(),
                             c.smem_bytes(), c.expected_sass(arch)});
        };
        for (const bool fp4: {false, true})
            for (const int h: {8, 16, 32, 64})
                for (const int d: {32, 64, 128})
                    for (const int bkv: {32, 64})
                        for (const bool fast: forms)
                            if (not fp4 or d != 32)
                                add(make(arch, h, d, bkv, fp4, fast));
        return specs;
    }
};

// ---------------------------------------------------------------------------------------------------- launches
namespace paged_detail {

inline bool is_capturing() {
    return c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None;
}

} // namespace paged_detail

inline void launch_paged_metadata(const torch::Tensor& context_lens, int next_n, int block_kv, int num_sms,
                                  const torch::Tensor& meta) {
    const int device = context_lens.get_device();
    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyPagedMetadata, 0, device, &PagedMetadataConfig::generate, &PagedMetadataConfig::symbol);
    const bool is_2d = context_lens.dim() == 2;
    const auto launch = jit::LaunchConfig::on(at::cuda::getCurrentCUDAStream(device).stream(), device,
                                              PagedMetadataConfig::kNumThreads, 0, 1);
    runtime->launch(launch, static_cast<const int*>(context_lens.data_ptr<int>()),
                    static_cast<int>(context_lens.size(0)), static_cast<long long>(context_lens.stride(0)),
                    static_cast<long long>(is_2d ? context_lens.stride(1) : 0), next_n, is_2d ? 1 : 0, block_kv,
                    num_sms, meta.data_ptr<int>());
}

// Everything the logits kernel needs, already validated
struct PagedLogitsArgs {
    const void* q;
    const int* q_sf;                // FP4 only
    const void* kv_cache;
    int64_t page_stride;            // bytes
    int num_pool_pages;
    const void* weights;
    int64_t weights_stride;         // elements
    const int* context_lens;
    int64_t cl_stride_b, cl_stride_t;
    const int* block_table;
    int64_t bt_stride;
    int max_pages;
    const int* schedule_meta;
    int num_sms;
    void* logits;
    int64_t logits_stride;          // elements
    int num_requests, next_n, max_context_len, flags;
};

inline void launch_paged_logits(const PagedMQALogitsConfig& config, const PagedLogitsArgs& a, int device,
                                cudaStream_t stream) {
    const auto runtime = jit::KernelCache::get().lookup_or_build_keyed(
        kFamilyPagedLogits, config.key(), device, [&]() { return config.generate(); }, [&]() { return config.symbol(); });
    const auto launch =
        jit::LaunchConfig::on(stream, device, config.num_threads(), config.smem_bytes(), a.num_sms);
    runtime->launch(launch, static_cast<const uint8_t*>(a.q), a.q_sf, static_cast<const uint8_t*>(a.kv_cache),
                    static_cast<long long>(a.page_stride), a.num_pool_pages, a.weights,
                    static_cast<long long>(a.weights_stride), a.context_lens, static_cast<long long>(a.cl_stride_b),
                    static_cast<long long>(a.cl_stride_t), a.block_table, static_cast<long long>(a.bt_stride),
                    a.max_pages, a.schedule_meta, a.logits, static_cast<long long>(a.logits_stride), a.num_requests,
                    a.next_n, a.max_context_len, a.flags);
}

// ------------------------------------------------------------------------------- the sm_120 MMA-form cross-check
// NOTES: docs/HARDWARE.md §4, through the shared `MmaCrossCheck`: the sm_120-only form of a config (FP8 block-scaled,
// FP4 native) runs once against its portable twin (FP8 plain, FP4 portable) on a small paged input with a
// permuted block table, 2-D lengths and next_n = 2; both outputs start as zeros, so whole tensors compare.
inline MmaCheckResult cross_check_paged_logits(const PagedMQALogitsConfig& candidate, int device, cudaStream_t stream,
                                               bool inject_fault) {
    const ArchSpec& arch = cached_arch_spec(device);
    // The twin is the config the call falls back to: for FP4 the portable form re-planned (its q placement and
    // stages differ); for FP8 the same config with the plain MMA
    PagedMQALogitsConfig twin = candidate;
    if (twin.fp4 and twin.fast_mma)
        twin = PagedMQALogitsConfig::make(arch, twin.num_heads, twin.head_dim, twin.block_kv, true, false);
    twin.fast_mma = false;
    const int H = candidate.num_heads, D = candidate.head_dim, bkv = candidate.block_kv, rb = candidate.row_bytes();
    constexpr int B = 2, n = 2, P = 6;
    auto gen = at::detail::createCPUGenerator(0x9a9ed);
    const auto cpu = torch::TensorOptions().dtype(torch::kFloat);
    const auto u8 = torch::TensorOptions().dtype(torch::kByte);
    const auto dev = torch::TensorOptions().device(torch::kCUDA, device);
    // FP4 scales: four UE8M0 bytes per int32 in [120, 134] (2^-7 .. 2^7)
    const auto fp4_scales = [&](std::vector<int64_t> shape) {
        auto sizes = shape;
        sizes.push_back(4);
        return torch::randint(120, 135, sizes, gen, u8).view(torch::kInt).view(shape);
    };
    torch::Tensor q, q_sf, keys, key_scales;
    if (candidate.fp4) {
        q = torch::randint(0, 256, {B, n, H, rb}, gen, u8);
        q_sf = fp4_scales({B, n, H}).to(dev);
        keys = torch::randint(0, 256, {P, bkv * rb}, gen, u8);
        key_scales = fp4_scales({P, bkv}).view(torch::kByte);
    } else {
        q = torch::randn({B, n, H, D}, gen, cpu).to(torch::kFloat8_e4m3fn).view(torch::kByte);
        keys = torch::randn({P, bkv * D}, gen, cpu).to(torch::kFloat8_e4m3fn).view(torch::kByte);
        key_scales = (torch::rand({P, bkv}, gen, cpu) + 0.25).view(torch::kByte);
    }
    q = q.to(dev);
    const auto kv = torch::cat({keys, key_scales.reshape({P, bkv * 4})}, 1).to(dev);
    const auto weights = torch::randn({B * n, H}, gen, cpu).to(dev);
    const auto i32 = dev.dtype(torch::kInt);
    const auto context_lens = torch::tensor({2 * bkv + 5, 2 * bkv + 6, bkv + 1, 3 * bkv}, torch::kInt).view({B, n}).to(dev);
    const auto block_table = torch::tensor({5, 0, 3, 1, 4, 2}, torch::kInt).view({B, 3}).to(dev);
    const int num_sms = jit::DeviceRuntime::get().get_num_sms();
    const auto meta = torch::empty({num_sms + 1, 2}, i32);
    launch_paged_metadata(context_lens, n, bkv, num_sms, meta);
    const int width = 3 * bkv;
    torch::Tensor outs[2];
    for (int i = 0; i < 2; ++i) {
        outs[i] = torch::zeros({B * n, width}, dev.dtype(torch::kFloat));
        const PagedLogitsArgs a{q.data_ptr(), candidate.fp4 ? q_sf.data_ptr<int>() : nullptr, kv.data_ptr(),
                                kv.stride(0), P, weights.data_ptr(), H, context_lens.data_ptr<int>(), n, 1,
                                block_table.data_ptr<int>(), 3, 3, meta.data_ptr<int>(), num_sms, outs[i].data_ptr(),
                                width, B, n, width, kPagedContextLens2DFlag | kPagedAligned16Flag};
        launch_paged_logits(i == 0 ? candidate : twin, a, device, stream);
    }
    return compare_mma_outputs(outs[0], outs[1], inject_fault);
}

// The MMA form to launch with: the config's, unless its cross-check fails (or cannot run yet, during capture)
inline bool resolve_paged_fast_mma(const PagedMQALogitsConfig& config, int device, cudaStream_t stream) {
    const bool validated = config.fp4 ? kFp4NativeValidatedOnHardware : kFp8BlockScaledValidatedOnHardware;
    return MmaCrossCheck::get().resolve(config.fp4 ? "fp8_fp4_paged_mqa_logits (FP4)" : "fp8_paged_mqa_logits",
                                        config.describe(), config.fast_mma, validated, device, stream,
                                        [&](bool inject_fault) {
        return cross_check_paged_logits(config, device, stream, inject_fault);
    });
}

// ------------------------------------------------------------------------------------------ the warm-path plan
// NOTES: the config a logits call launches with follows from (device, FP8 or FP4, H, D, block_kv), the `DG_*`
// environment (DG_SM120_MODE through the arch spec, DG_SM120_FP8_MMA / DG_SM120_FP4_MMA, DG_SM120_MMA_CHECK,
// DG_PRINT_CONFIGS) and, only for an sm_120-only MMA form not yet validated on hardware, the cross-check's state.
// Plans are kept per thread in a `WarmPlanCache` (utils/env_watch.hpp: the one warm-path policy). A plan whose MMA form
// depends on the cross-check keeps `settled` false, and the call resolves that form as before (so
// `_mma_cross_check_reset` and capture-time deferral still apply).
struct PagedLogitsPlan {
    const ArchSpec* arch = nullptr;     // `cached_arch_spec` (stable for the life of the process)
    bool settled = false;               // `config.fast_mma` is final (no cross-check involved)
    bool print = false;                 // DG_PRINT_CONFIGS
    PagedMQALogitsConfig config;        // the final config if `settled`, else the candidate to resolve
    mutable ResolvedMmaForm resolved;   // not `settled`: the cross-check's decision, once made

    // The plan of this thread for the current `DG_*` environment; the reference stays valid until its next call
    static const PagedLogitsPlan& find(int device, bool fp4, int h, int d, int bkv) {
        static thread_local WarmPlanCache<PagedLogitsPlan> plans;
        const uint64_t key = static_cast<uint64_t>(device) | static_cast<uint64_t>(fp4) << 16 |
                             static_cast<uint64_t>(h) << 24 | static_cast<uint64_t>(d) << 32 |
                             static_cast<uint64_t>(bkv) << 48;
        return plans.find(key, [&]() {
            PagedLogitsPlan p;
            p.arch = &cached_arch_spec(device);
            // The sm_120a/121a-only MMA form where the target has it (cross-checked once); else, or should that
            // check fail, the portable form (re-planned: FP4's q placement and stages depend on the form)
            const bool want_fast = fp4 ? choose_native_fp4_mma(*p.arch) : choose_block_scaled_fp8_mma(*p.arch);
            p.config = PagedMQALogitsConfig::make(*p.arch, h, d, bkv, fp4, want_fast);
            const bool validated = fp4 ? kFp4NativeValidatedOnHardware : kFp8BlockScaledValidatedOnHardware;
            p.settled = settled_mma_form(want_fast, validated).has_value();
            p.print = DgKnobs::get().print_configs;
            return p;
        });
    }
};

// ------------------------------------------------------------------------------------- the cached value check
// NOTES: a context length above `max_context_len` or the block table's reach is a caller bug that the kernel
// survives (it clamps) but cannot report. Outside graph capture we check it once per (context_lens buffer,
// version, ...): SGLang reuses one `context_lens` across all layers, so only the first layer synchronizes.
struct PagedValueCheckCache {
    struct Key {
        const void* ptr;
        uint32_t version;
        int32_t dim;
        int64_t sizes[2], strides[2];
        int64_t max_pages;
        int32_t block_kv, max_context_len, next_n, pad;

        bool operator==(const Key& o) const {
            return ptr == o.ptr and version == o.version and dim == o.dim and sizes[0] == o.sizes[0] and
                   sizes[1] == o.sizes[1] and strides[0] == o.strides[0] and strides[1] == o.strides[1] and
                   max_pages == o.max_pages and block_kv == o.block_kv and max_context_len == o.max_context_len and
                   next_n == o.next_n;
        }
    };
    std::mutex mutex;
    std::array<Key, 32> entries{};
    int count = 0, next = 0;

    static PagedValueCheckCache& get() {
        static PagedValueCheckCache c;
        return c;
    }
};

inline void check_context_lens_values(const char* fn, const torch::Tensor& context_lens, int64_t max_pages,
                                      int block_kv, int max_context_len, int next_n) {
    if (context_lens.numel() == 0 or paged_detail::is_capturing())
        return;
    auto& cache = PagedValueCheckCache::get();
    const bool is_2d = context_lens.dim() == 2;
    const PagedValueCheckCache::Key key{
        context_lens.data_ptr(), context_lens.unsafeGetTensorImpl()->version_counter().current_version(),
        static_cast<int32_t>(context_lens.dim()), {context_lens.size(0), is_2d ? context_lens.size(1) : 0},
        {context_lens.stride(0), is_2d ? context_lens.stride(1) : 0}, max_pages, block_kv, max_context_len, next_n, 0};
    {
        std::lock_guard<std::mutex> lock(cache.mutex);
        for (int i = 0; i < cache.count; ++i)
            if (cache.entries[i] == key)
                return;
    }
    const int64_t max_len = context_lens.max().item<int>();
    DG_CHECK(max_len <= max_context_len, fn, ": every `context_lens` value must be <= `max_context_len` = ",
             max_context_len, "; got a maximum of ", max_len);
    DG_CHECK(max_len <= max_pages * block_kv, fn, ": every `context_lens` value must be <= `block_table`.shape[1] * "
             "block_kv = ", max_pages, " * ", block_kv, " = ", max_pages * block_kv, "; got a maximum of ", max_len);
    std::lock_guard<std::mutex> lock(cache.mutex);
    cache.entries[cache.next] = key;
    cache.next = (cache.next + 1) % static_cast<int>(cache.entries.size());
    cache.count = std::min<int>(cache.count + 1, static_cast<int>(cache.entries.size()));
}

// ------------------------------------------------------------------------------------------------ public calls
inline int64_t paged_logits_row_stride(int64_t max_context_len, int64_t elem_size) {
    const auto align = [](int64_t x, int64_t a) { return (x + a - 1) / a * a; };
    return align(align(max_context_len, 256), 1024 / elem_size);
}

inline void check_paged_context_lens(const ArgCheck& c, const torch::Tensor& context_lens) {
    c.cuda(context_lens, "context_lens");
    c.dtype(context_lens, "context_lens", torch::kInt);
    DG_CHECK(context_lens.dim() == 1 or context_lens.dim() == 2, c.fn,
             ": `context_lens` must be 1-D [B] or 2-D [B, next_n]; got ", describe(context_lens));
}

inline void check_paged_indices(const ArgCheck& c, const std::optional<torch::Tensor>& indices,
                                const torch::Tensor& context_lens) {
    if (not indices.has_value())
        return;
    const auto& idx = indices.value();
    c.on_device(idx, "indices", context_lens.device());
    c.dtype(idx, "indices", torch::kInt);
    c.dim(idx, "indices", 1, "[B]");
    c.size(idx, "indices", 0, context_lens.size(0), "B, the number of `context_lens` rows");
    DG_CHECK(context_lens.dim() == 1 or context_lens.size(1) == 1, c.fn,
             ": with `indices` (varlen), next_n must be 1, so `context_lens` must be [B] or [B, 1]; got ",
             describe(context_lens));
}

inline torch::Tensor get_paged_mqa_logits_metadata(const torch::Tensor& context_lens, int block_kv, int num_sms,
                                                   const std::optional<torch::Tensor>& indices) {
    const ArgCheck c{"get_paged_mqa_logits_metadata"};
    check_paged_context_lens(c, context_lens);
    DG_CHECK(block_kv > 0, c.fn, ": `block_kv` must be positive; got ", block_kv);
    DG_CHECK(num_sms > 0, c.fn, ": `num_sms` must be positive; got ", num_sms);
    check_paged_indices(c, indices, context_lens);
    // NOTES: `indices` (varlen) needs nothing here: every token is scheduled as its own request. The output comes
    // straight from the CUDA caching allocator (`new_device_tensor`: no dispatcher round-trip)
    const c10::cuda::CUDAGuard guard(context_lens.device());
    const std::array<int64_t, 2> sizes = {static_cast<int64_t>(num_sms) + 1, 2};
    const auto meta = new_device_tensor(at::IntArrayRef(sizes), torch::kInt, context_lens.device());
    const int next_n = context_lens.dim() == 2 ? static_cast<int>(context_lens.size(1)) : 1;
    if (context_lens.dim() == 2 and next_n == 0)
        return meta.fill_(0).index_put_({-1, 0}, static_cast<int>(context_lens.size(0)));
    launch_paged_metadata(context_lens, next_n, block_kv, num_sms, meta);
    return meta;
}

// `q_sf` present: the FP4 form (q packed e2m1 int8 [B, next_n, H, D/2], q_sf int32 [B, next_n, H], an FP4 cache
// [P, block_kv, 1, D/2 + 4]); absent: the FP8 form (q e4m3 [B, next_n, H, D], an FP8 cache [P, block_kv, 1, D + 4])
inline torch::Tensor paged_mqa_logits(const char* fn, const torch::Tensor& q, const std::optional<torch::Tensor>& q_sf,
                                      const torch::Tensor& kv_cache, const torch::Tensor& weights,
                                      const torch::Tensor& context_lens, const torch::Tensor& block_table,
                                      const torch::Tensor& schedule_meta, int64_t max_context_len, bool clean_logits,
                                      at::ScalarType logits_dtype, const std::optional<torch::Tensor>& indices) {
    const ArgCheck c{fn};
    const bool fp4 = q_sf.has_value();
    c.cuda(q, "q");
    if (fp4) {
        // q: ([B, next_n, H, D/2] packed e2m1, [B, next_n, H] int32 packed UE8M0)
        DG_TYPE_CHECK(q.scalar_type() == torch::kChar or q.scalar_type() == torch::kByte, fn,
                      ": FP4 `q` (with scales `q[1]`) must have dtype torch.int8 (packed e2m1, two per byte); got ",
                      describe(q));
        c.dim(q, "q", 4, "[B, next_n, H, D/2] (packed FP4)");
    } else {
        DG_TYPE_CHECK(q.scalar_type() != torch::kChar and q.scalar_type() != torch::kByte, fn,
                      ": packed FP4 `q` needs its scales: pass q = (q_fp4, q_sf int32 [B, next_n, H]); got q_sf = None "
                      "and ", describe(q));
        c.dtype(q, "q", torch::kFloat8_e4m3fn);
        c.dim(q, "q", 4, "[B, next_n, H, D]");
    }
    c.contiguous(q, "q");
    const auto device = q.device();
    const int64_t B = q.size(0), next_n = q.size(1), H = q.size(2), D = fp4 ? 2 * q.size(3) : q.size(3);
    const int64_t row_bytes = fp4 ? D / 2 : D;
    c.one_of<int64_t>(H, "q.shape[2]", {8, 16, 32, 64}, "the number of heads");
    if (fp4)
        DG_CHECK(D == 64 or D == 128, fn, ": FP4 `q`.shape[3] must be D/2 with the head dim D one of [64, 128] "
                 "(32 or 64 packed bytes); got ", describe(q));
    else
        c.one_of<int64_t>(D, "q.shape[3]", {32, 64, 128}, "the head dim");
    DG_CHECK(1 <= next_n and next_n <= PagedMQALogitsHeuristics::kMaxNextN, fn, ": next_n = `q`.shape[1] must be in "
             "[1, ", PagedMQALogitsHeuristics::kMaxNextN, "]; got ", describe(q));
    DG_CHECK(reinterpret_cast<uintptr_t>(q.data_ptr()) % 16 == 0, fn, ": `q` must start 16-byte aligned");
    if (fp4) {
        const auto& sf = q_sf.value();
        c.on_device(sf, "q[1] (q_sf)", device);
        c.dtype(sf, "q[1] (q_sf)", torch::kInt);
        DG_CHECK(sf.dim() == 3 and sf.size(0) == B and sf.size(1) == next_n and sf.size(2) == H, fn,
                 ": `q[1]` (q_sf) must be [B, next_n, H] = [", B, ", ", next_n, ", ", H, "] int32 (four packed UE8M0 "
                 "scales per head); got ", describe(sf));
        c.contiguous(sf, "q[1] (q_sf)");
    }
    DG_TYPE_CHECK(logits_dtype == torch::kFloat or logits_dtype == torch::kBFloat16, fn,
                  ": `logits_dtype` must be torch.float32 or torch.bfloat16; got ", dtype_name(logits_dtype));

    // kv_cache: [P, block_kv, 1, row_bytes + 4] bytes
    c.on_device(kv_cache, "kv_cache", device);
    if (fp4)
        DG_TYPE_CHECK(kv_cache.scalar_type() == torch::kByte or kv_cache.scalar_type() == torch::kChar, fn,
                      ": with FP4 `q` the `kv_cache` must be an FP4 cache of dtype torch.uint8 [num_pages, block_kv, "
                      "1, D/2 + 4]; got ", describe(kv_cache));
    else
        c.dtype_one_of(kv_cache, "kv_cache", {torch::kByte, torch::kFloat8_e4m3fn, torch::kChar});
    c.dim(kv_cache, "kv_cache", 4, fp4 ? "[num_pages, block_kv, 1, D/2 + 4]" : "[num_pages, block_kv, 1, D + 4]");
    const int64_t P = kv_cache.size(0), block_kv = kv_cache.size(1);
    c.one_of<int64_t>(block_kv, "kv_cache.shape[1]", {32, 64}, "block_kv");
    c.size(kv_cache, "kv_cache", 2, 1, "one KV head");
    if (fp4)
        DG_CHECK(kv_cache.size(3) == row_bytes + 4, fn, ": with FP4 `q` (D = ", D, ") `kv_cache`.shape[3] must be "
                 "D/2 + 4 = ", row_bytes + 4, " (an FP4 cache: D/2 packed key bytes and an int32 of UE8M0 scales per "
                 "token); got ", describe(kv_cache),
                 kv_cache.size(3) == D + 4 ? " (an FP8 cache? FP8 keys need FP8 `q`)" : "");
    else
        DG_CHECK(kv_cache.size(3) == row_bytes + 4, fn, ": with FP8 `q` (D = ", D, ") `kv_cache`.shape[3] must be "
                 "D + 4 = ", row_bytes + 4, " (an FP8 cache: D key bytes and a float32 scale per token); got ",
                 describe(kv_cache), kv_cache.size(3) == D / 2 + 4 ? " (an FP4 cache? FP4 keys need FP4 `q` = "
                 "(q_fp4, q_sf))" : "");
    DG_CHECK(kv_cache.stride(3) == 1 and kv_cache.stride(1) == row_bytes + 4, fn,
             ": `kv_cache` pages must be dense (strides [*, ", row_bytes + 4, ", *, 1]); got strides ",
             kv_cache.strides().vec());
    const int64_t page_stride = kv_cache.stride(0);
    DG_CHECK(P <= 1 or (page_stride >= block_kv * (row_bytes + 4) and page_stride % 4 == 0), fn,
             ": `kv_cache`.stride(0) must be a multiple of 4 and >= block_kv * ", row_bytes + 4, " = ",
             block_kv * (row_bytes + 4), "; got ", page_stride);
    DG_CHECK(reinterpret_cast<uintptr_t>(kv_cache.data_ptr()) % 4 == 0, fn, ": `kv_cache` must start 4-byte aligned");
    DG_CHECK(P < (int64_t(1) << 31), fn, ": `kv_cache` may hold at most 2^31 - 1 pages; got ", P);

    // weights: [B * next_n, H]
    c.on_device(weights, "weights", device);
    c.dtype_one_of(weights, "weights", {torch::kFloat, torch::kBFloat16});
    DG_TYPE_CHECK(weights.scalar_type() == torch::kFloat or logits_dtype == torch::kBFloat16, fn,
                  ": bf16 `weights` need bf16 logits (`logits_dtype=torch.bfloat16`)");
    c.dim(weights, "weights", 2, "[B * next_n, H]");
    c.size(weights, "weights", 0, B * next_n, "B * next_n");
    c.size(weights, "weights", 1, H, "H, the number of heads of `q`");
    c.last_dim_contiguous(weights, "weights");

    // context_lens: [B, next_n] or [B]
    check_paged_context_lens(c, context_lens);
    c.on_device(context_lens, "context_lens", device);
    c.size(context_lens, "context_lens", 0, B, "B = `q`.shape[0]");
    if (context_lens.dim() == 2)
        c.size(context_lens, "context_lens", 1, next_n, "next_n = `q`.shape[1]");
    check_paged_indices(c, indices, context_lens);
    DG_CHECK(not indices.has_value() or next_n == 1, fn, ": with `indices` (varlen), next_n = `q`.shape[1] must be 1; "
             "got ", next_n);

    // block_table: [B, max_pages]
    c.on_device(block_table, "block_table", device);
    c.dtype(block_table, "block_table", torch::kInt);
    c.dim(block_table, "block_table", 2, "[B, max_pages]");
    c.size(block_table, "block_table", 0, B, "B = `q`.shape[0]");
    c.last_dim_contiguous(block_table, "block_table");

    // schedule_meta: [get_num_sms() + 1, 2]
    const int num_sms = jit::DeviceRuntime::get().get_num_sms();
    c.on_device(schedule_meta, "schedule_meta", device);
    c.dtype(schedule_meta, "schedule_meta", torch::kInt);
    DG_CHECK(schedule_meta.dim() == 2 and schedule_meta.size(0) == num_sms + 1 and schedule_meta.size(1) == 2 and
             schedule_meta.is_contiguous(), fn, ": `schedule_meta` must be a contiguous [get_num_sms() + 1, 2] = [",
             num_sms + 1, ", 2] tensor from get_paged_mqa_logits_metadata(context_lens, block_kv, "
             "deep_gemm.get_num_sms()); got ", describe(schedule_meta),
             " (was it built for another SM count? see deep_gemm.set_num_sms)");
    DG_CHECK(0 <= max_context_len and max_context_len < (int64_t(1) << 31), fn,
             ": `max_context_len` must be in [0, 2^31); got ", max_context_len);

    const c10::cuda::CUDAGuard guard(device);
    check_context_lens_values(fn, context_lens, block_table.size(1), static_cast<int>(block_kv),
                              static_cast<int>(max_context_len), static_cast<int>(next_n));

    // The output: [B * next_n, max_context_len] with an aligned row stride, over a whole [B * next_n, stride]
    // allocation. NOTES: the fresh tensor's sizes are set in place (no view op on the warm path); the kernels
    // write only columns < max_context_len
    const int64_t elem = logits_dtype == torch::kFloat ? 4 : 2;
    const int64_t stride = paged_logits_row_stride(max_context_len, elem);
    auto logits = new_output_buffer({B * next_n, stride}, torch::TensorOptions().dtype(logits_dtype).device(device));
    const std::array<int64_t, 2> sizes = {B * next_n, max_context_len}, strides = {stride, 1};
    logits.unsafeGetTensorImpl()->set_sizes_and_strides(at::IntArrayRef(sizes), at::IntArrayRef(strides));
    if (B == 0 or max_context_len == 0)
        return logits;

    const int dev_index = device.index();
    const int h = static_cast<int>(H), d = static_cast<int>(D), bkv = static_cast<int>(block_kv);
    const auto stream = at::cuda::getCurrentCUDAStream(dev_index).stream();
    // The plan of this shape under the current `DG_*` environment (`PagedLogitsPlan::find`), then the MMA form's
    // cross-check where the plan could not settle it. A copy: the cross-check's warning may run Python code
    const PagedLogitsPlan plan = PagedLogitsPlan::find(dev_index, fp4, h, d, bkv);
    auto config = plan.config;
    if (not plan.settled) {
        const bool fast = ResolvedMmaForm::decide(plan.resolved, stream, [&]() {
            return resolve_paged_fast_mma(config, dev_index, stream);
        }, [&](const ResolvedMmaForm& r) { PagedLogitsPlan::find(dev_index, fp4, h, d, bkv).resolved = r; });
        if (fast != config.fast_mma)
            config = PagedMQALogitsConfig::make(*plan.arch, h, d, bkv, fp4, fast);
    }
    if (plan.print)
        std::fprintf(stderr, "deep_gemm: %s: %s\n", fn, config.describe().c_str());

    const bool aligned = reinterpret_cast<uintptr_t>(kv_cache.data_ptr()) % 16 == 0 and
                         (page_stride * kv_cache.element_size()) % 16 == 0;
    int flags = 0;
    flags |= context_lens.dim() == 2 ? kPagedContextLens2DFlag : 0;
    flags |= weights.scalar_type() == torch::kBFloat16 ? kPagedWeightsBF16Flag : 0;
    flags |= logits_dtype == torch::kBFloat16 ? kPagedLogitsBF16Flag : 0;
    flags |= aligned ? kPagedAligned16Flag : 0;
    const PagedLogitsArgs a{q.data_ptr(), fp4 ? q_sf.value().data_ptr<int>() : nullptr, kv_cache.data_ptr(),
                            page_stride * kv_cache.element_size(), static_cast<int>(P), weights.data_ptr(),
                            weights.stride(0), context_lens.data_ptr<int>(), context_lens.stride(0),
                            context_lens.dim() == 2 ? context_lens.stride(1) : 0, block_table.data_ptr<int>(),
                            block_table.stride(0), static_cast<int>(std::min<int64_t>(block_table.size(1), INT32_MAX)),
                            schedule_meta.data_ptr<int>(), num_sms, logits.data_ptr(), stride, static_cast<int>(B),
                            static_cast<int>(next_n), static_cast<int>(max_context_len), flags};
    launch_paged_logits(config, a, dev_index, stream);
    if (clean_logits)
        launch_clean_logits(logits, static_cast<int>(B * next_n), static_cast<int>(max_context_len),
                            context_lens.dim() == 2 ? CleanMode::kPaged2D : CleanMode::kPaged1D, nullptr,
                            context_lens.data_ptr<int>(), context_lens.stride(0),
                            context_lens.dim() == 2 ? context_lens.stride(1) : 0, static_cast<int>(next_n));
    return logits;
}

} // namespace deep_gemm
