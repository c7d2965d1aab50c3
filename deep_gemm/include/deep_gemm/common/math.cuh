#pragma once

#include "types.cuh"

namespace deep_gemm {

// Round-to-nearest-even float -> bf16, NaN-preserving
DG_DEVICE uint16_t float_to_bf16_bits(float x) {
    uint16_t r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
}

DG_DEVICE float bf16_bits_to_float(uint16_t b) { return __int_as_float(static_cast<uint32_t>(b) << 16); }

template <typename T> DG_DEVICE T from_float(float x);
template <> DG_DEVICE float from_float<float>(float x) { return x; }
template <> DG_DEVICE bf16_t from_float<bf16_t>(float x) { return {float_to_bf16_bits(x)}; }

template <typename T> DG_DEVICE float to_float(T x);
template <> DG_DEVICE float to_float<float>(float x) { return x; }
template <> DG_DEVICE float to_float<bf16_t>(bf16_t x) { return bf16_bits_to_float(x.bits); }

// The bit pattern of -inf in the logits type, replicated to fill 32 bits
template <typename T> DG_DEVICE uint32_t neg_inf_word();
template <> DG_DEVICE uint32_t neg_inf_word<float>() { return 0xff800000u; }
template <> DG_DEVICE uint32_t neg_inf_word<bf16_t>() { return 0xff80ff80u; }

} // namespace deep_gemm
