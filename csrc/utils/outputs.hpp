#pragma once

// NOTES: outputs the library allocates (logits) come from here. With `DG_DEBUG_POISON_OUTPUTS=1` every fresh
// buffer is filled with NaN before the kernel runs, so tests can prove that every valid element is written
// (instead of relying on the caching allocator handing back a block they poisoned). Off by default: it costs
// a memset. Seen on the next call after it changes (`DgKnobs`), so a test can switch it on and off.
//
// Allocation goes straight to the CUDA caching allocator (`at::detail::empty_cuda`, what `at::empty` on a CUDA
// device ends in) instead of through the dispatcher and the autograd factory wrapper of `torch::empty`: the same
// tensor (contiguous, no grad, stream-ordered and graph-safe through the caching allocator), less host time.

#include <ATen/cuda/EmptyTensor.h>
#include <limits>
#include <torch/python.h>

#include "env_watch.hpp"

namespace deep_gemm {

inline torch::Tensor new_device_tensor(at::IntArrayRef sizes, at::ScalarType dtype, const c10::Device& device) {
    return at::Tensor(at::detail::empty_cuda(sizes, dtype, device, std::nullopt));
}

inline torch::Tensor new_output_buffer(at::IntArrayRef sizes, const torch::TensorOptions& options) {
    auto buffer = new_device_tensor(sizes, options.dtype().toScalarType(), options.device());
    if (DgKnobs::get().poison_outputs)
        buffer.fill_(std::numeric_limits<float>::quiet_NaN());
    return buffer;
}

} // namespace deep_gemm
