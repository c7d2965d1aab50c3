#pragma once

// NOTES: outputs the library allocates (logits) come from here. With `DG_DEBUG_POISON_OUTPUTS=1` every fresh
// buffer is filled with NaN before the kernel runs, so tests can prove that every valid element is written
// (instead of relying on the caching allocator handing back a block they poisoned). Off by default: it costs
// a memset. Read per call, so a test can switch it on and off.

#include <limits>
#include <torch/python.h>

#include "system.hpp"

namespace deep_gemm {

inline torch::Tensor new_output_buffer(at::IntArrayRef sizes, const torch::TensorOptions& options) {
    auto buffer = torch::empty(sizes, options);
    if (get_env_flag("DG_DEBUG_POISON_OUTPUTS"))
        buffer.fill_(std::numeric_limits<float>::quiet_NaN());
    return buffer;
}

} // namespace deep_gemm
