// Per-CTA timeline of the mHC pre-norm GEMM kernel (deep_gemm/include/deep_gemm/impls/sm120_tf32_hc_prenorm_gemm.cuh),
// read with %globaltimer: when each CTA's main loop ends, how long the split sum takes after a tile's last main loop
// (election, the closer's loads and sum, its stores), and how far the CTAs' main loops spread.
//
// Build and run (on the GPU machine; `benchmarks/device_check.sh` does this with HC_TIMELINE=1):
//   nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I deep_gemm/include benchmarks/hc_timeline.cu \
//        -o /tmp/hc_timeline && /tmp/hc_timeline [M] [internal splits] [group size]
//   /tmp/hc_timeline sweep [M:splits:group[:tile] ...]: M = 1, 64, 256, 1024 over internal split counts and sum
//   shapes (or the given entries, M <= 4096; tile 1 = a 64-row 7-stage candidate), one line each
// Defaults: M = 4096 with the 4 internal splits (one group) that the host plan picks on a 132-SM GPU; N = 24,
// K = 16384. The same work is also run as 4 caller splits (`num_splits=4`: no in-kernel sum) for comparison. The L2
// is flushed by reading 256 MB before every timed launch. The tile shape is the library's (128 x 64, 4 stages).
#include <algorithm>
#include <cmath>
#include <string>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

__device__ unsigned long long* g_timeline;      // [CTA][8]: 0 start, 1-3 the kernel's marks, 4 end, 5 SM id

__device__ __forceinline__ unsigned long long global_timer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ void timeline_mark(const int slot, const unsigned long long value) {
    if (threadIdx.x == 0)
        g_timeline[(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z)) * 8 + slot] = value;
}

#define DG_HC_TIMELINE_MARK(slot) timeline_mark(slot, global_timer())
#include <deep_gemm/impls/sm120_tf32_hc_prenorm_gemm.cuh>

#define CHECK(x) do { const cudaError_t e = (x); if (e != cudaSuccess) { \
    std::printf("%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

// The library's tile (HcPrenormTiling: 128 rows, 4 stages, 256 threads) unless a sweep entry names another
constexpr int kN = 24, kK = 16384, kBlockM = 128, kStages = 4, kThreads = 256;

template <int kTileM, int kTileStages, int kTileThreads>
__global__ void __launch_bounds__(kTileThreads, 1)
hc_kernel(const deep_gemm::bf16_t* a, const float* b, float* d, float* s, float* ws, unsigned* counters, int m,
          int user_splits, int int_splits, int group) {
    timeline_mark(0, global_timer());
    deep_gemm::sm120_tf32_hc_prenorm_gemm_impl<3, true, kTileM, 64, kTileStages, kTileThreads>(
        a, kK, b, kK, d, s, ws, counters, m, kN, kK, user_splits, int_splits, group);
    __syncthreads();
    timeline_mark(4, global_timer());
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    timeline_mark(5, sm);
}

__global__ void fill_bits(unsigned* p, long long n, unsigned seed) {
    for (long long i = blockIdx.x * 256ll + threadIdx.x; i < n; i += 256ll * gridDim.x) {
        unsigned x = static_cast<unsigned>(i) * 2654435761u ^ seed;
        x ^= x >> 13, x *= 0x5bd1e995u, x ^= x >> 15;
        p[i] = (x & 0x3fff3fffu) | 0x3c003c00u;     // finite values in both bf16 halves (and as fp32)
    }
}

__global__ void read_all(const uint4* p, long long n, unsigned* sink) {
    unsigned acc = 0;
    for (long long i = blockIdx.x * 256ll + threadIdx.x; i < n; i += 256ll * gridDim.x)
        acc ^= p[i].x ^ p[i].w;
    if (acc == 0x9e3779b9u)
        *sink = acc;
}

// `a` [rows, K] and `b` [N, K] with finite values, a 256 MB buffer that the timed runs read to flush L2, a sink word
struct Inputs {
    const deep_gemm::bf16_t* a;
    const float* b;
    const uint4* flush;
    unsigned* sink;
};

static Inputs make_inputs(const int rows) {
    deep_gemm::bf16_t* a;
    float* b;
    void* flush;
    unsigned* sink;
    CHECK(cudaMalloc(&a, 2ll * rows * kK));
    CHECK(cudaMalloc(&b, 4ll * kN * kK));
    CHECK(cudaMalloc(&sink, 64));
    CHECK(cudaMalloc(&flush, 256ll << 20));
    CHECK(cudaMemset(flush, 0, 256ll << 20));
    fill_bits<<<1024, 256>>>(reinterpret_cast<unsigned*>(a), 1ll * rows * kK / 2, 1);
    fill_bits<<<64, 256>>>(reinterpret_cast<unsigned*>(b), 1ll * kN * kK, 2);
    CHECK(cudaDeviceSynchronize());
    return {a, b, static_cast<const uint4*>(flush), sink};
}

static double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

template <int kTileM = kBlockM, int kTileStages = kStages, int kTileThreads = kThreads>
static void run(const char* name, const Inputs& in, int m, int user_splits, int int_splits, int group,
                bool brief = false) {
    const auto kernel = hc_kernel<kTileM, kTileStages, kTileThreads>;
    const int tiles = (m + kTileM - 1) / kTileM, ctas = tiles * user_splits * int_splits;
    const int smem = kTileStages * (kTileM * 64 * 2 + kN * 64 * 4);
    CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    float *d, *s, *ws;
    unsigned* counters;
    unsigned long long* timeline;
    CHECK(cudaMalloc(&d, sizeof(float) * user_splits * m * kN));
    CHECK(cudaMalloc(&s, sizeof(float) * user_splits * m));
    CHECK(cudaMalloc(&ws, sizeof(float) * 2 * ctas * (kTileM * 25)));
    CHECK(cudaMalloc(&counters, 4 * 65536));
    CHECK(cudaMemset(counters, 0, 4 * 65536));
    CHECK(cudaMalloc(&timeline, 64 * ctas));
    CHECK(cudaMemcpyToSymbol(g_timeline, &timeline, sizeof(timeline)));
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    std::vector<double> events, spans;
    for (int rep = 0; rep < 6; ++rep) {
        read_all<<<1024, 256>>>(in.flush, (256ll << 20) / 16, in.sink);
        CHECK(cudaMemset(timeline, 0, 64 * ctas));
        CHECK(cudaEventRecord(e0));
        kernel<<<dim3(tiles, int_splits, user_splits), kTileThreads, smem>>>(in.a, in.b, d, s, ws, counters, m,
                                                                            user_splits, int_splits, group);
        CHECK(cudaEventRecord(e1));
        CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        CHECK(cudaEventElapsedTime(&ms, e0, e1));
        if (rep < 2)
            continue;       // clocks and caches settle
        std::vector<unsigned long long> t(8 * ctas);
        CHECK(cudaMemcpy(t.data(), timeline, 64 * ctas, cudaMemcpyDeviceToHost));
        unsigned long long t0 = ~0ull, t1 = 0;
        for (int c = 0; c < ctas; ++c)
            t0 = std::min(t0, t[c * 8]), t1 = std::max(t1, t[c * 8 + 4]);
        const auto us = [&](int c, int slot) { return (t[c * 8 + slot] - t0) / 1e3; };
        events.push_back(ms * 1e3), spans.push_back((t1 - t0) / 1e3);
        if (brief)
            continue;
        std::vector<double> main_end;
        for (int c = 0; c < ctas; ++c)
            main_end.push_back(us(c, 1));
        std::printf("%-34s M=%d caller splits=%d internal=%d: event %.1f us, first start -> last end %.1f us, "
                    "main loop end p0 %.1f p50 %.1f p100 %.1f us", name, m, user_splits, int_splits, ms * 1e3,
                    (t1 - t0) / 1e3, quantile(main_end, 0), quantile(main_end, 0.5), quantile(main_end, 1));
        if (int_splits > 1 and group == int_splits) {
            // Per tile, from its last main loop: the closer's election, its sum, its stores, and the tile's end
            double elect = 0, sum = 0, store = 0, tail = 0;
            for (int tile = 0; tile < tiles * user_splits; ++tile) {
                int closer = -1;
                double last_main = 0, end = 0;
                for (int sp = 0; sp < int_splits; ++sp) {
                    const int c = tile % tiles + tiles * (sp + int_splits * (tile / tiles));
                    last_main = std::max(last_main, us(c, 1)), end = std::max(end, us(c, 4));
                    if (t[c * 8 + 3] != 0)
                        closer = c;
                }
                elect += us(closer, 2) - us(closer, 1), sum += us(closer, 3) - us(closer, 2);
                store += us(closer, 4) - us(closer, 3), tail += end - last_main;
            }
            const double n = tiles * user_splits;
            std::printf("\n    split sum per tile (means): election %.2f us, closer's loads + sum %.2f us, stores "
                        "%.2f us; tile end - its last main loop %.2f us", elect / n, sum / n, store / n, tail / n);
        }
        std::printf("\n");
    }
    if (brief)
        std::printf("%-10s M=%5d caller splits=%d internal=%3d group=%3d: event median %.1f us, span median %.1f us\n",
                    name, m, user_splits, int_splits, group, quantile(events, 0.5), quantile(spans, 0.5));
    CHECK(cudaFree(d));
    CHECK(cudaFree(s));
    CHECK(cudaFree(ws));
    CHECK(cudaFree(counters));
    CHECK(cudaFree(timeline));
}

int main(int argc, char** argv) {
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("%s (%d SMs); timeline from %%globaltimer, microseconds from the first CTA's start\n", prop.name,
                prop.multiProcessorCount);
    if (argc > 1 and std::string(argv[1]) == "sweep") {
        // Small M: internal split counts and sum shapes, to check the host plan's choice (brief lines)
        const int max_m = 4096;
        const Inputs in = make_inputs(max_m);
        if (argc > 2) {
            // Explicit M:splits:group entries; a fourth field 1 runs a 64-row, 7-stage, 4-warp tile instead of the
            // library's (a small-M candidate: 6 stages in flight within sm_120's shared memory)
            for (int i = 2; i < argc; ++i) {
                int m = 0, sp = 0, g = 0, tile = 0;
                const int fields = std::sscanf(argv[i], "%d:%d:%d:%d", &m, &sp, &g, &tile);
                if (fields >= 3 and m >= 1 and m <= max_m and sp >= 1 and g >= 1 and g <= sp and kK / 64 / sp >= 2 and
                    (tile == 0 or tile == 1))
                    tile == 0 ? run("sweep", in, m, 1, sp, g, true)
                              : run<64, 7, 128>("64x7 tile", in, m, 1, sp, g, true);
                else
                    std::printf("skipped '%s': expected M:splits:group[:tile 0|1] with M <= %d\n", argv[i], max_m);
            }
            return 0;
        }
        for (const int m : {1, 64, 256, 1024}) {
            const int tiles = (m + kBlockM - 1) / kBlockM;
            for (const int s : {4, 8, 16, 32, 64, 128}) {
                if (tiles * s > prop.multiProcessorCount or s > kK / 128)
                    continue;
                run("sweep", in, m, 1, s, s, true);
                const int g = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(s))));
                if (g < s and s >= 8)
                    run("sweep", in, m, 1, s, g, true);
            }
            if (tiles * 16 <= prop.multiProcessorCount)
                run("caller", in, m, 16, 1, 1, true);
        }
        return 0;
    }
    const int m = argc > 1 ? std::atoi(argv[1]) : 4096;
    const int int_splits = argc > 2 ? std::atoi(argv[2]) : 4;
    const int group = argc > 3 ? std::atoi(argv[3]) : int_splits;
    if (m < 1 or int_splits < 1 or group < 1 or group > int_splits or kK / 64 / int_splits < 2) {
        std::printf("usage: hc_timeline [M >= 1] [internal splits, 1..%d] [group size, 1..splits]\n"
                    "       hc_timeline sweep [M:splits:group[:tile] ...]\n", kK / 128);
        return 2;
    }
    const Inputs in = make_inputs(m);
    run("in-kernel split sum", in, m, 1, int_splits, group);
    if (kK / 64 % int_splits == 0)
        run("same work as caller splits (no sum)", in, m, int_splits, 1, 1);
    return 0;
}
