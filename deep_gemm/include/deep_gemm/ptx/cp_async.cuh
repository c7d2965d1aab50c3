#pragma once

// cp.async (sm_80+): asynchronous global -> shared copies, grouped by commit and waited for by count.

#include "../common/types.cuh"

namespace deep_gemm::ptx {

DG_DEVICE uint32_t smem_addr(const void* ptr) { return static_cast<uint32_t>(__cvta_generic_to_shared(ptr)); }

// 16 bytes, bypassing L1 (`.cg`): streamed operands are read once per CTA
DG_DEVICE void cp_async_16(void* smem_dst, const void* gmem_src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(smem_addr(smem_dst)), "l"(gmem_src) : "memory");
}

// 16 bytes, or 16 zeros (no global read at all) when `valid` is false; `gmem_src` must still be a legal address
DG_DEVICE void cp_async_16_zfill(uint32_t smem_dst, const void* gmem_src, const bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(smem_dst), "l"(gmem_src), "r"(valid ? 16u : 0u)
                 : "memory");
}

// 4 bytes, for sources only 4-byte aligned (padded pages, strided scale factors)
DG_DEVICE void cp_async_4(void* smem_dst, const void* gmem_src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" :: "r"(smem_addr(smem_dst)), "l"(gmem_src) : "memory");
}

DG_DEVICE void cp_async_4_zfill(uint32_t smem_dst, const void* gmem_src, const bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" :: "r"(smem_dst), "l"(gmem_src), "r"(valid ? 4u : 0u)
                 : "memory");
}

DG_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

// Wait until at most N of this thread's committed groups are still in flight
template <int N>
DG_DEVICE void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }

} // namespace deep_gemm::ptx
