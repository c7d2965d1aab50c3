#pragma once

// NOTES: what the runtime knows about the current GPU, plus the user-settable knobs of upstream's runtime API
// (`set_num_sms`, `set_tc_util`, ...). Device properties come from torch's per-device cache.

#include <ATen/cuda/CUDAContext.h>
#include <string>

#include "../utils/env_watch.hpp"
#include "../utils/exception.hpp"
#include "../utils/system.hpp"

namespace deep_gemm::jit {

// The `-arch` target for a compute capability: `a` variants where arch-specific instructions exist
inline std::string compile_target_for(int major, int minor) {
    if (major == 9 and minor == 0) return "sm_90a";
    if (major == 10) return cat("sm_10", minor, "a");
    if (major == 12) return cat("sm_12", minor, "a");
    return cat("sm_", major, minor);
}

class DeviceRuntime {
    int num_sms_override = 0;
    int tc_util = 100;
    bool pdl = false;
    int mk_alignment = 128;

public:
    static DeviceRuntime& get() {
        static DeviceRuntime runtime;
        return runtime;
    }

    static const cudaDeviceProp& props(int device = -1) {
        DG_RUNTIME_CHECK(at::cuda::is_available(), "deep_gemm: no CUDA device is visible to this process "
                         "(torch.cuda.is_available() is False); deep_gemm kernels need an NVIDIA GPU (sm_120 / sm_121; sm_90 for testing)");
        if (device < 0)
            device = c10::cuda::current_device();
        return *at::cuda::getDeviceProperties(device);
    }

    static std::pair<int, int> capability(int device = -1) {
        const auto& p = props(device);
        return {p.major, p.minor};
    }

    static std::string compile_target(int device = -1) {
        const auto [major, minor] = capability(device);
        return compile_target_for(major, minor);
    }

    static std::string device_description(int device = -1) {
        const auto& p = props(device);
        return cat(p.name, " (sm_", p.major, p.minor, ")");
    }

    // `DG_SM120_MODE=1`: plan tiles, stages and shared memory for sm_120 while compiling for the GPU at hand
    static bool sm120_mode() { return DgKnobs::get().sm120_mode; }

    int get_num_sms() {
        const int device_sms = props().multiProcessorCount;
        return num_sms_override > 0 ? std::min(num_sms_override, device_sms) : device_sms;
    }

    void set_num_sms(int n) {
        const int device_sms = props().multiProcessorCount;
        DG_CHECK(0 < n and n <= device_sms, "set_num_sms: `new_num_sms` must be in [1, ", device_sms,
                 "] (the SM count of ", device_description(), "); got ", n);
        num_sms_override = n;
    }

    int get_tc_util() const { return tc_util; }
    void set_tc_util(int v) {
        DG_CHECK(0 <= v and v <= 100, "set_tc_util: `new_tc_util` must be in [0, 100]; got ", v);
        tc_util = v;
    }

    bool get_pdl() const { return pdl; }
    void set_pdl(bool v) { pdl = v; }

    static constexpr int kMaxMkAlignment = 4096;
    int get_mk_alignment() const { return mk_alignment; }
    void set_mk_alignment(int v) {
        // Any positive row count: upstream's tests use 32, 128, 160, 192 and 224
        DG_CHECK(0 < v and v <= kMaxMkAlignment, "set_mk_alignment_for_contiguous_layout: `new_value` must be an int "
                 "in [1, ", kMaxMkAlignment, "]; got ", v);
        mk_alignment = v;
    }
};

} // namespace deep_gemm::jit
