#pragma once

// Loads and stores: ldmatrix (the warp-level fragment loads), plain shared-memory vectors by address, read-only and
// L2-coherent global loads.

#include "cp_async.cuh"

namespace deep_gemm::ptx {

// --- ldmatrix: 8x8 b16 matrices; lane l supplies the row address of matrix l / 8, row l % 8, and receives the
// 32-bit word (l % 4) of row (l / 4) of each matrix
DG_DEVICE void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(smem_row)));
}

DG_DEVICE void ldmatrix_x4(uint32_t (&r)[4], const uint32_t smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_row));
}

DG_DEVICE void ldmatrix_x2(uint32_t (&r)[2], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(smem_row)));
}

// --- shared memory by 32-bit address
DG_DEVICE void lds_64(uint32_t (&r)[2], const uint32_t addr) {
    asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
}

DG_DEVICE void lds_128(uint32_t (&r)[4], const uint32_t addr) {
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

DG_DEVICE void sts_128(const uint32_t addr, const uint32_t (&r)[4]) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" :: "r"(addr), "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
                 : "memory");
}

// --- global memory
DG_DEVICE int ld_nc(const int* ptr) {
    int v;
    asm volatile("ld.global.nc.b32 %0, [%1];" : "=r"(v) : "l"(ptr));
    return v;
}

// L2-coherent loads of data other CTAs of this launch wrote (split-K partials): never served from a stale L1 line
DG_DEVICE float4 ld_cg_f4(const float* ptr) {
    float4 v;
    asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(ptr)
                 : "memory");
    return v;
}

DG_DEVICE void st_cg_f4(float* ptr, const float4 v) {
    asm volatile("st.global.cg.v4.f32 [%0], {%1, %2, %3, %4};" :: "l"(ptr), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
}

// One thread's count-in on a grid-wide counter: release (its CTA's earlier stores, ordered before this thread by a
// CTA barrier, become visible first) and acquire (what the CTAs counted in before published is visible after it)
DG_DEVICE uint32_t atomic_add_acq_rel(uint32_t* counter, const uint32_t value) {
    uint32_t old;
    asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(counter), "r"(value) : "memory");
    return old;
}

} // namespace deep_gemm::ptx
