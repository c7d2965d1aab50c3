#pragma once

// mbarrier (sm_80+; `try_wait` sm_90+, with a `test_wait` spin below sm_90).

#include "cp_async.cuh"

namespace deep_gemm::ptx {

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

// Spin until phase `phase` of `bar` has completed
DG_DEVICE void mbarrier_wait_parity(uint64_t* bar, uint32_t phase) {
    uint32_t done = 0;
    while (not done) {
#if defined(__CUDA_ARCH__) and __CUDA_ARCH__ < 900
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.test_wait.parity.shared.b64 p, [%1], %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done) : "r"(smem_addr(bar)), "r"(phase) : "memory");
#else
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared.b64 p, [%1], %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done) : "r"(smem_addr(bar)), "r"(phase) : "memory");
#endif
    }
}

} // namespace deep_gemm::ptx
