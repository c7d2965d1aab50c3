#pragma once

// Thin wrappers over the PTX this project uses: warp shuffles, cp.async (sm_80+), mbarrier (sm_80+) and
// ldmatrix. Everything here exists on sm_89, sm_90 and sm_120 alike.

#include "../common/types.cuh"

namespace deep_gemm::ptx {

DG_DEVICE uint32_t lane_id() { return threadIdx.x & 31; }
DG_DEVICE uint32_t warp_id() { return threadIdx.x >> 5; }

DG_DEVICE uint32_t smem_addr(const void* ptr) { return static_cast<uint32_t>(__cvta_generic_to_shared(ptr)); }

template <typename T>
DG_DEVICE T shfl_xor(T v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }

// One round of a reduce-scatter between lanes `lane` and `lane ^ kMask`: of each pair (in[2o], in[2o + 1]) this
// lane keeps element `bit` (its lane's bit of kMask) and adds the partner's copy of it; the partner keeps the other.
// Both lanes add in the same order, so the halves stay bitwise consistent.
template <int kMask, int kN>
DG_DEVICE void reduce_scatter_round(float (&out)[kN / 2], const float (&in)[kN], const int bit) {
    static_assert(kN % 2 == 0, "pairs");
    #pragma unroll
    for (int o = 0; o < kN / 2; ++o) {
        const float send = bit ? in[2 * o] : in[2 * o + 1];
        const float keep = bit ? in[2 * o + 1] : in[2 * o];
        out[o] = keep + shfl_xor(send, kMask);
    }
}

// --- cp.async ------------------------------------------------------------------------------------------------------
// 16-byte copy, bypassing L1 (`.cg`): KV pages are read once
DG_DEVICE void cp_async_16(void* smem_dst, const void* gmem_src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(smem_addr(smem_dst)), "l"(gmem_src) : "memory");
}

// 4-byte copy, for sources only 4-byte aligned (padded pages)
DG_DEVICE void cp_async_4(void* smem_dst, const void* gmem_src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" :: "r"(smem_addr(smem_dst)), "l"(gmem_src) : "memory");
}

// Barrier `id` (1..15; 0 is __syncthreads) over `num_threads` threads (a multiple of 32) of the CTA
DG_DEVICE void named_barrier_sync(const uint32_t id, const uint32_t num_threads) {
    asm volatile("bar.sync %0, %1;" :: "r"(id), "r"(num_threads) : "memory");
}

DG_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

template <int N>
DG_DEVICE void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }

// --- mbarrier --------------------------------------------------------------------------------------------------------
DG_DEVICE void mbarrier_init(uint64_t* bar, uint32_t count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;" :: "r"(smem_addr(bar)), "r"(count) : "memory");
}

DG_DEVICE void mbarrier_arrive(uint64_t* bar) {
    asm volatile("{\n\t.reg .b64 state;\n\tmbarrier.arrive.shared.b64 state, [%0];\n\t}" :: "r"(smem_addr(bar)) : "memory");
}

// Arrives on `bar` when all of this thread's prior cp.async operations have completed (does not count as
// a pending arrival: the barrier's expected count must include it)
DG_DEVICE void cp_async_mbarrier_arrive(uint64_t* bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];" :: "r"(smem_addr(bar)) : "memory");
}

DG_DEVICE bool mbarrier_try_wait(uint64_t* bar, uint32_t phase) {
    uint32_t done;
    asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared.b64 p, [%1], %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
                 : "=r"(done) : "r"(smem_addr(bar)), "r"(phase) : "memory");
    return done != 0;
}

DG_DEVICE void mbarrier_wait(uint64_t* bar, uint32_t phase) {
    while (not mbarrier_try_wait(bar, phase));
}

// --- ldmatrix ----------------------------------------------------------------------------------------------------------
// Four 8x8 b16 matrices; lane l supplies the row address of matrix l / 8, row l % 8
DG_DEVICE void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(smem_row)));
}

DG_DEVICE void ldmatrix_x2(uint32_t (&r)[2], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(smem_row)));
}

// --- global loads ------------------------------------------------------------------------------------------------------
DG_DEVICE int ld_nc(const int* ptr) {
    int v;
    asm volatile("ld.global.nc.b32 %0, [%1];" : "=r"(v) : "l"(ptr));
    return v;
}

// --- portable mbarrier parity wait (paged MQA logits) ------------------------------------------------------------------
// `mbarrier.try_wait` needs sm_90; sm_80/sm_89 spin on `mbarrier.test_wait`
DG_DEVICE void mbarrier_wait_parity(uint64_t* bar, uint32_t phase) {
#if defined(__CUDA_ARCH__) and __CUDA_ARCH__ < 900
    uint32_t done = 0;
    while (not done) {
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.test_wait.parity.shared.b64 p, [%1], %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done) : "r"(smem_addr(bar)), "r"(phase) : "memory");
    }
#else
    mbarrier_wait(bar, phase);
#endif
}

} // namespace deep_gemm::ptx
