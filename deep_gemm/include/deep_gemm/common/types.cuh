#pragma once

// NOTES: device code includes nothing from the toolkit (no <cstdint>, no cuda_fp16.h), so NVCC and NVRTC
// compile it identically and the JIT needs only this directory on its include path.

namespace deep_gemm {

using int8_t = signed char;
using uint8_t = unsigned char;
using int16_t = short;
using uint16_t = unsigned short;
using int32_t = int;
using uint32_t = unsigned int;
using int64_t = long long;
using uint64_t = unsigned long long;

// A bf16 value as its bit pattern: kernels convert explicitly through the helpers in `common/math.cuh`
struct bf16_t { uint16_t bits; };

template <typename T> struct is_bf16 { static constexpr bool value = false; };
template <> struct is_bf16<bf16_t> { static constexpr bool value = true; };

template <bool kCond, typename T, typename F> struct conditional { using type = T; };
template <typename T, typename F> struct conditional<false, T, F> { using type = F; };

template <typename T, typename U> struct is_same { static constexpr bool value = false; };
template <typename T> struct is_same<T, T> { static constexpr bool value = true; };

#define DG_DEVICE __device__ __forceinline__

template <typename T>
DG_DEVICE constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

template <typename T>
DG_DEVICE constexpr T align_up(T a, T b) { return ceil_div(a, b) * b; }

template <typename T>
DG_DEVICE constexpr T min_of(T a, T b) { return a < b ? a : b; }

template <typename T>
DG_DEVICE constexpr T max_of(T a, T b) { return a > b ? a : b; }

} // namespace deep_gemm
