#pragma once

// Host side of the paged MQA logits family (CONTRACT.md §2.2-2.4): the schedule-metadata kernel
// (`smxx_paged_mqa_logits_metadata.cuh`), the FP8 logits kernel (`sm120_fp8_paged_mqa_logits.cuh`), argument
// checks, the cached synchronous value check, and the once-per-config cross-check of the block-scaled MMA form.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/python.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "../../jit/cache.hpp"
#include "../../jit/device_runtime.hpp"
#include "../../utils/checks.hpp"
#include "../../utils/outputs.hpp"
#include "../heuristics/sm120_paged_mqa_logits.hpp"
#include "../registry.hpp"
#include "smxx_clean_logits.hpp"

namespace deep_gemm {

// The kernel's runtime flags (`PagedLogitsFlags` in the .cuh)
constexpr int kPagedContextLens2DFlag = 1, kPagedWeightsBF16Flag = 2, kPagedLogitsBF16Flag = 4,
              kPagedAligned16Flag = 8;

// ---------------------------------------------------------------------------------------------------- configs
struct PagedMetadataConfig {
    static constexpr int kNumThreads = 1024;

    static std::string symbol() { return "smxx_paged_mqa_logits_metadata"; }

    static std::string generate() {
        return cat("#include <deep_gemm/impls/smxx_paged_mqa_logits_metadata.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", kNumThreads, ", 1) ", symbol(), "(\n",
                   "        const int* context_lens, int num_requests, long long stride_b, long long stride_t,\n",
                   "        int next_n, int is_2d, int block_kv, int num_sms, int* meta) {\n",
                   "    deep_gemm::smxx_paged_mqa_logits_metadata_impl<", kNumThreads, ">(\n",
                   "        context_lens, num_requests, stride_b, stride_t, next_n, is_2d != 0, block_kv, num_sms, meta);\n",
                   "}\n");
    }
};

struct PagedMQALogitsConfig {
    int num_heads = 64, head_dim = 128, block_kv = 64, num_stages = 2;
    bool block_scaled = false;

    static std::string symbol() { return "sm120_fp8_paged_mqa_logits"; }
    int smem_bytes() const { return PagedMQALogitsHeuristics::smem_bytes(head_dim, block_kv, num_stages); }

    std::string generate() const {
        return cat("#include <deep_gemm/impls/sm120_fp8_paged_mqa_logits.cuh>\n\n",
                   "extern \"C\" __global__ void __launch_bounds__(", PagedMQALogitsHeuristics::kNumThreads, ", 1) ",
                   symbol(), "(\n",
                   "        const deep_gemm::uint8_t* q, const deep_gemm::uint8_t* kv_cache, long long page_stride,\n",
                   "        int num_pool_pages, const void* weights, long long weights_stride, const int* context_lens,\n",
                   "        long long cl_stride_b, long long cl_stride_t, const int* block_table, long long bt_stride,\n",
                   "        int max_pages, const int* schedule_meta, void* logits, long long logits_stride,\n",
                   "        int num_requests, int next_n, int max_context_len, int flags) {\n",
                   "    deep_gemm::sm120_fp8_paged_mqa_logits_impl<", num_heads, ", ", head_dim, ", ", block_kv, ", ",
                   num_stages, ", ", block_scaled ? "true" : "false", ">(\n",
                   "        q, kv_cache, page_stride, num_pool_pages, weights, weights_stride, context_lens, cl_stride_b,\n",
                   "        cl_stride_t, block_table, bt_stride, max_pages, schedule_meta, logits, logits_stride,\n",
                   "        num_requests, next_n, max_context_len, flags);\n",
                   "}\n");
    }

    std::string describe() const {
        return cat("H=", num_heads, " D=", head_dim, " block_kv=", block_kv, " stages=", num_stages,
                   block_scaled ? " mma=block_scaled" : " mma=plain");
    }

    // Every config the heuristics can pick: both MMA forms where the block-scaled one exists (the plain form is
    // `DG_SM120_FP8_MMA=plain` and the cross-check's fallback)
    static std::vector<KernelSpec> enumerate(const ArchSpec& arch) {
        std::vector<KernelSpec> specs;
        specs.push_back({"paged_mqa_logits_metadata", PagedMetadataConfig::symbol(), PagedMetadataConfig::generate(),
                         "metadata", PagedMetadataConfig::kNumThreads, 0, {}});
        std::vector<bool> forms = {false};
        if (arch.block_scaled_mma)
            forms.push_back(true);
        for (const int h: {8, 16, 32, 64})
            for (const int d: {32, 64, 128})
                for (const int bkv: {32, 64})
                    for (const bool bs: forms) {
                        const PagedMQALogitsConfig c{h, d, bkv, PagedMQALogitsHeuristics::num_stages(arch, d, bkv), bs};
                        std::vector<std::string> sass;
                        if (arch.is_sm120_family())
                            sass.push_back(bs ? "QMMA.SF" : "QMMA.16832");
                        specs.push_back({"paged_mqa_logits", symbol(), c.generate(), c.describe(),
                                         PagedMQALogitsHeuristics::kNumThreads, c.smem_bytes(), sass});
                    }
        return specs;
    }
};

// ---------------------------------------------------------------------------------------------------- launches
namespace paged_detail {

inline std::shared_ptr<jit::KernelRuntime> runtime_for(const std::string& source, const std::string& symbol,
                                                       int device) {
    static std::mutex mutex;
    static std::map<std::pair<std::string, std::string>, std::shared_ptr<jit::KernelRuntime>> cache;
    const auto target = jit::DeviceRuntime::compile_target(device);
    auto key = std::make_pair(target, source);
    {
        std::lock_guard<std::mutex> lock(mutex);
        if (const auto it = cache.find(key); it != cache.end())
            return it->second;
    }
    auto rt = jit::KernelCache::get().lookup_or_build(symbol, source, target);
    std::lock_guard<std::mutex> lock(mutex);
    return cache.emplace(std::move(key), std::move(rt)).first->second;
}

inline bool is_capturing() {
    return c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None;
}

} // namespace paged_detail

inline void launch_paged_metadata(const torch::Tensor& context_lens, int next_n, int block_kv, int num_sms,
                                  const torch::Tensor& meta) {
    const int device = context_lens.get_device();
    static const std::string source = PagedMetadataConfig::generate();
    const auto runtime = paged_detail::runtime_for(source, PagedMetadataConfig::symbol(), device);
    const bool is_2d = context_lens.dim() == 2;
    jit::LaunchConfig launch;
    launch.grid_x = 1;
    launch.block_x = PagedMetadataConfig::kNumThreads;
    launch.stream = at::cuda::getCurrentCUDAStream(device).stream();
    launch.device = device;
    runtime->launch(launch, static_cast<const int*>(context_lens.data_ptr<int>()),
                    static_cast<int>(context_lens.size(0)), static_cast<long long>(context_lens.stride(0)),
                    static_cast<long long>(is_2d ? context_lens.stride(1) : 0), next_n, is_2d ? 1 : 0, block_kv,
                    num_sms, meta.data_ptr<int>());
}

// Everything the logits kernel needs, already validated
struct PagedLogitsArgs {
    const void* q;
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

inline void launch_paged_logits(const PagedMQALogitsConfig& config, const PagedLogitsArgs& a, int device) {
    const auto runtime = paged_detail::runtime_for(config.generate(), PagedMQALogitsConfig::symbol(), device);
    jit::LaunchConfig launch;
    launch.grid_x = static_cast<unsigned>(a.num_sms);
    launch.block_x = PagedMQALogitsHeuristics::kNumThreads;
    launch.smem_bytes = static_cast<unsigned>(config.smem_bytes());
    launch.stream = at::cuda::getCurrentCUDAStream(device).stream();
    launch.device = device;
    runtime->launch(launch, static_cast<const uint8_t*>(a.q), static_cast<const uint8_t*>(a.kv_cache),
                    static_cast<long long>(a.page_stride), a.num_pool_pages, a.weights,
                    static_cast<long long>(a.weights_stride), a.context_lens, static_cast<long long>(a.cl_stride_b),
                    static_cast<long long>(a.cl_stride_t), a.block_table, static_cast<long long>(a.bt_stride),
                    a.max_pages, a.schedule_meta, a.logits, static_cast<long long>(a.logits_stride), a.num_requests,
                    a.next_n, a.max_context_len, a.flags);
}

// ------------------------------------------------------------------------------- the block-scaled cross-check
// NOTES: SM120.md §4: the block-scaled form (sm_120a/121a only) is checked once per (H, D, block_kv) and process
// against the plain form on a small input; on a mismatch it warns once and the plain form is used from then on.
// `DG_PAGED_MQA_XCHECK=force` runs the check on any GPU with the plain form as the candidate (so the mechanism is
// exercised on the H100); `=force_mismatch` also perturbs the candidate's result to exercise the fallback.
struct PagedXCheckState {
    std::mutex mutex;
    std::map<std::tuple<int, int, int>, bool> results;    // (H, D, block_kv) -> the block-scaled form agrees

    static PagedXCheckState& get() {
        static PagedXCheckState s;
        return s;
    }
};

inline bool run_paged_xcheck(const PagedMQALogitsConfig& candidate, const PagedMQALogitsConfig& twin,
                             const c10::Device& device, bool simulate_mismatch) {
    const int H = candidate.num_heads, D = candidate.head_dim, bkv = candidate.block_kv;
    constexpr int B = 2, n = 2, P = 6;
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
    const auto i32 = torch::TensorOptions().dtype(torch::kInt).device(device);
    // Deterministic pseudo-random values that leave torch's RNG state alone
    const auto noise = [&](int64_t count, double seed) {
        return torch::arange(count, f32).mul(12.9898).add(seed).sin().mul(43758.5453).frac();
    };
    const auto q = noise(B * n * H * D, 0.1).mul(6.0).to(torch::kFloat8_e4m3fn);
    auto kv = torch::zeros({P, bkv * (D + 4)}, torch::TensorOptions().dtype(torch::kByte).device(device));
    kv.narrow(1, 0, bkv * D).copy_(noise(P * bkv * D, 0.7).mul(6.0).to(torch::kFloat8_e4m3fn).view({P, bkv * D})
                                       .view(torch::kByte));
    kv.narrow(1, bkv * D, bkv * 4).copy_(noise(P * bkv, 0.3).abs().add(0.25).view({P, bkv}).view(torch::kByte));
    const auto weights = noise(B * n * H, 0.9).view({B * n, H}).contiguous();
    const auto context_lens = torch::tensor({2 * bkv + 5, 2 * bkv + 6, bkv + 1, 3 * bkv}, i32).view({B, n});
    const auto block_table = torch::tensor({5, 0, 3, 1, 4, 2}, i32).view({B, 3});
    const int num_sms = jit::DeviceRuntime::get().get_num_sms();
    const auto meta = torch::empty({num_sms + 1, 2}, i32);
    launch_paged_metadata(context_lens, n, bkv, num_sms, meta);
    const int width = 3 * bkv;
    torch::Tensor outs[2];
    for (int i = 0; i < 2; ++i) {
        outs[i] = torch::zeros({B * n, width}, f32);
        const PagedLogitsArgs a{q.data_ptr(), kv.data_ptr(), kv.stride(0), P, weights.data_ptr(), H,
                                context_lens.data_ptr<int>(), n, 1, block_table.data_ptr<int>(), 3,
                                3, meta.data_ptr<int>(), num_sms, outs[i].data_ptr(), width, B, n, width,
                                kPagedContextLens2DFlag | kPagedAligned16Flag};
        launch_paged_logits(i == 0 ? candidate : twin, a, device.index());
    }
    if (simulate_mismatch)
        outs[0].view(-1).narrow(0, 0, 1).add_(1.0f);
    return torch::equal(outs[0], outs[1]);
}

// The MMA form for (H, D, block_kv) on this device, running the cross-check on first use
inline bool choose_block_scaled(const ArchSpec& arch, const PagedMQALogitsConfig& base, const c10::Device& device) {
    const auto force = get_env("DG_PAGED_MQA_XCHECK");
    const bool forced = force == "force" or force == "force_mismatch";
    const bool want = PagedMQALogitsHeuristics::want_block_scaled(arch);
    if (not want and not forced)
        return false;
    auto& state = PagedXCheckState::get();
    const auto key = std::make_tuple(base.num_heads, base.head_dim, base.block_kv);
    {
        std::lock_guard<std::mutex> lock(state.mutex);
        if (const auto it = state.results.find(key); it != state.results.end())
            return want and it->second;
    }
    // NOTES: the check synchronizes, which a capturing stream forbids: use the plain form, decide later
    if (paged_detail::is_capturing())
        return false;
    PagedMQALogitsConfig candidate = base, twin = base;
    candidate.block_scaled = want;
    twin.block_scaled = false;
    const bool ok = run_paged_xcheck(candidate, twin, device, force == "force_mismatch");
    if (not ok)
        std::fprintf(stderr, "deep_gemm warning: fp8_paged_mqa_logits: the %s FP8 MMA form of config (%s) disagrees "
                     "with the plain form on a cross-check; using the plain form for it from now on\n",
                     want ? "block-scaled" : "candidate", base.describe().c_str());
    std::lock_guard<std::mutex> lock(state.mutex);
    state.results[key] = ok;
    return want and ok;
}

// ------------------------------------------------------------------------------------- the cached value check
// NOTES: a context length above `max_context_len` or the block table's reach is a caller bug that the kernel
// survives (it clamps) but cannot report. Outside graph capture we check it once per (context_lens buffer,
// version, ...): SGLang reuses one `context_lens` across all layers, so only the first layer synchronizes.
struct PagedValueCheckCache {
    using Key = std::tuple<const void*, uint32_t, std::vector<int64_t>, std::vector<int64_t>, int64_t, int, int, int>;
    std::mutex mutex;
    std::vector<Key> entries;

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
    PagedValueCheckCache::Key key{context_lens.data_ptr(),
                                  context_lens.unsafeGetTensorImpl()->version_counter().current_version(),
                                  context_lens.sizes().vec(), context_lens.strides().vec(), max_pages, block_kv,
                                  max_context_len, next_n};
    {
        std::lock_guard<std::mutex> lock(cache.mutex);
        for (const auto& e: cache.entries)
            if (e == key)
                return;
    }
    const int64_t max_len = context_lens.max().item<int>();
    DG_CHECK(max_len <= max_context_len, fn, ": every `context_lens` value must be <= `max_context_len` = ",
             max_context_len, "; got a maximum of ", max_len);
    DG_CHECK(max_len <= max_pages * block_kv, fn, ": every `context_lens` value must be <= `block_table`.shape[1] * "
             "block_kv = ", max_pages, " * ", block_kv, " = ", max_pages * block_kv, "; got a maximum of ", max_len);
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (cache.entries.size() >= 32)
        cache.entries.erase(cache.entries.begin());
    cache.entries.push_back(std::move(key));
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
    // NOTES: `indices` (varlen) needs nothing here: every token is scheduled as its own request
    const c10::cuda::CUDAGuard guard(context_lens.device());
    const auto meta = torch::empty({num_sms + 1, 2}, context_lens.options());
    const int next_n = context_lens.dim() == 2 ? static_cast<int>(context_lens.size(1)) : 1;
    if (context_lens.dim() == 2 and next_n == 0)
        return meta.fill_(0).index_put_({-1, 0}, static_cast<int>(context_lens.size(0)));
    launch_paged_metadata(context_lens, next_n, block_kv, num_sms, meta);
    return meta;
}

inline torch::Tensor paged_mqa_logits(const char* fn, const torch::Tensor& q, const torch::Tensor& kv_cache,
                                      const torch::Tensor& weights, const torch::Tensor& context_lens,
                                      const torch::Tensor& block_table, const torch::Tensor& schedule_meta,
                                      int64_t max_context_len, bool clean_logits, at::ScalarType logits_dtype,
                                      const std::optional<torch::Tensor>& indices) {
    const ArgCheck c{fn};
    // q: [B, next_n, H, D] float8_e4m3fn
    c.cuda(q, "q");
    c.dtype(q, "q", torch::kFloat8_e4m3fn);
    c.dim(q, "q", 4, "[B, next_n, H, D]");
    c.contiguous(q, "q");
    const auto device = q.device();
    const int64_t B = q.size(0), next_n = q.size(1), H = q.size(2), D = q.size(3);
    c.one_of<int64_t>(H, "q.shape[2]", {8, 16, 32, 64}, "the number of heads");
    c.one_of<int64_t>(D, "q.shape[3]", {32, 64, 128}, "the head dim");
    DG_CHECK(1 <= next_n and next_n <= PagedMQALogitsHeuristics::kMaxNextN, fn, ": next_n = `q`.shape[1] must be in "
             "[1, ", PagedMQALogitsHeuristics::kMaxNextN, "]; got ", describe(q));
    DG_CHECK(reinterpret_cast<uintptr_t>(q.data_ptr()) % 16 == 0, fn, ": `q` must start 16-byte aligned");
    DG_TYPE_CHECK(logits_dtype == torch::kFloat or logits_dtype == torch::kBFloat16, fn,
                  ": `logits_dtype` must be torch.float32 or torch.bfloat16; got ", dtype_name(logits_dtype));

    // kv_cache: [P, block_kv, 1, D + 4] bytes
    c.on_device(kv_cache, "kv_cache", device);
    c.dtype_one_of(kv_cache, "kv_cache", {torch::kByte, torch::kFloat8_e4m3fn, torch::kChar});
    c.dim(kv_cache, "kv_cache", 4, "[num_pages, block_kv, 1, D + 4]");
    const int64_t P = kv_cache.size(0), block_kv = kv_cache.size(1);
    c.one_of<int64_t>(block_kv, "kv_cache.shape[1]", {32, 64}, "block_kv");
    c.size(kv_cache, "kv_cache", 2, 1, "one KV head");
    c.size(kv_cache, "kv_cache", 3, D + 4, "D + 4: D key bytes and a float32 scale per token");
    DG_CHECK(kv_cache.stride(3) == 1 and kv_cache.stride(1) == D + 4, fn,
             ": `kv_cache` pages must be dense (strides [*, D + 4, *, 1]); got strides ",
             kv_cache.strides().vec());
    const int64_t page_stride = kv_cache.stride(0);
    DG_CHECK(P <= 1 or (page_stride >= block_kv * (D + 4) and page_stride % 4 == 0), fn,
             ": `kv_cache`.stride(0) must be a multiple of 4 and >= block_kv * (D + 4) = ", block_kv * (D + 4),
             "; got ", page_stride);
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

    // The output: a view into a buffer with an aligned row stride
    const int64_t elem = logits_dtype == torch::kFloat ? 4 : 2;
    const int64_t stride = paged_logits_row_stride(max_context_len, elem);
    const auto buffer = new_output_buffer({B * next_n, stride}, torch::TensorOptions().dtype(logits_dtype).device(device));
    auto logits = buffer.narrow(1, 0, max_context_len);
    if (B == 0 or max_context_len == 0)
        return logits;

    const auto arch = current_arch_spec();
    PagedMQALogitsConfig config{static_cast<int>(H), static_cast<int>(D), static_cast<int>(block_kv),
                                PagedMQALogitsHeuristics::num_stages(arch, static_cast<int>(D),
                                                                     static_cast<int>(block_kv)), false};
    config.block_scaled = choose_block_scaled(arch, config, device);
    if (get_env_flag("DG_PRINT_CONFIGS"))
        std::fprintf(stderr, "deep_gemm: %s: %s\n", fn, config.describe().c_str());

    const bool aligned = reinterpret_cast<uintptr_t>(kv_cache.data_ptr()) % 16 == 0 and
                         (page_stride * kv_cache.element_size()) % 16 == 0;
    int flags = 0;
    flags |= context_lens.dim() == 2 ? kPagedContextLens2DFlag : 0;
    flags |= weights.scalar_type() == torch::kBFloat16 ? kPagedWeightsBF16Flag : 0;
    flags |= logits_dtype == torch::kBFloat16 ? kPagedLogitsBF16Flag : 0;
    flags |= aligned ? kPagedAligned16Flag : 0;
    const PagedLogitsArgs a{q.data_ptr(), kv_cache.data_ptr(), page_stride * kv_cache.element_size(),
                            static_cast<int>(P), weights.data_ptr(), weights.stride(0), context_lens.data_ptr<int>(),
                            context_lens.stride(0), context_lens.dim() == 2 ? context_lens.stride(1) : 0,
                            block_table.data_ptr<int>(), block_table.stride(0),
                            static_cast<int>(std::min<int64_t>(block_table.size(1), INT32_MAX)),
                            schedule_meta.data_ptr<int>(), num_sms, buffer.data_ptr(), stride, static_cast<int>(B),
                            static_cast<int>(next_n), static_cast<int>(max_context_len), flags};
    launch_paged_logits(config, a, device.index());
    if (clean_logits)
        launch_clean_logits(buffer, static_cast<int>(B * next_n), static_cast<int>(max_context_len),
                            context_lens.dim() == 2 ? CleanMode::kPaged2D : CleanMode::kPaged1D, nullptr,
                            context_lens.data_ptr<int>(), context_lens.stride(0),
                            context_lens.dim() == 2 ? context_lens.stride(1) : 0, static_cast<int>(next_n));
    return logits;
}

} // namespace deep_gemm
