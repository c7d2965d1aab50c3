#pragma once

// NOTES: a compiled kernel, loaded as a context-independent `CUlibrary`, so one load serves every device
// of the same architecture. Launches go through `cuLaunchKernelEx` on the caller's stream.

#include <atomic>
#include <mutex>
#include <string>

#include "driver.hpp"

namespace deep_gemm::jit {

struct LaunchConfig {
    unsigned grid_x = 1, grid_y = 1, grid_z = 1;
    unsigned block_x = 1;
    unsigned smem_bytes = 0;
    CUstream stream = nullptr;
    int device = 0;             // the ordinal `stream` belongs to (its context is made current by the caller)
};

class KernelRuntime {
    CUlibrary library = nullptr;
    CUkernel kernel = nullptr;
    std::string symbol;
    // Dynamic shared-memory limit already raised on these devices (bit per ordinal, up to 64 devices)
    std::atomic<unsigned long long> smem_configured{0};
    std::mutex smem_mutex;

public:
    KernelRuntime(const std::string& cubin, const std::string& name): symbol(name) {
        auto& d = Driver::get();
        DG_CU_CHECK(d.cuLibraryLoadData(&library, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0),
                    cat("loading the cubin of ", name));
        DG_CU_CHECK(d.cuLibraryGetKernel(&kernel, library, name.c_str()), cat("finding kernel ", name, " in its cubin"));
    }

    ~KernelRuntime() {
        // Libraries are process-lifetime: unloading at interpreter exit races with driver teardown
    }

    KernelRuntime(const KernelRuntime&) = delete;
    KernelRuntime& operator=(const KernelRuntime&) = delete;

    const std::string& name() const { return symbol; }

    int attribute(CUfunction_attribute attr, int device) const {
        int value = 0;
        DG_CU_CHECK(Driver::get().cuKernelGetAttribute(&value, attr, kernel, device), "cuKernelGetAttribute");
        return value;
    }

    template <typename... Args>
    void launch(const LaunchConfig& config, Args... args) {
        auto& d = Driver::get();
        const int device = config.device;
        const auto bit = 1ull << (static_cast<unsigned>(device) & 63);
        // NOTES: raised for any dynamic size, not only > 48 KB: static shared memory counts against the same
        // 48 KB default (a kernel with 128 B static + 48 KB dynamic failed to launch on the H100 without it)
        if (config.smem_bytes > 0 and (smem_configured.load(std::memory_order_acquire) & bit) == 0) {
            std::lock_guard<std::mutex> lock(smem_mutex);
            // NOTES: each generated source has one fixed shared-memory size, so setting it once per device suffices
            DG_CU_CHECK(d.cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                               static_cast<int>(config.smem_bytes), kernel, device),
                        cat("raising the shared-memory limit of ", symbol, " to ", config.smem_bytes, " bytes"));
            smem_configured.fetch_or(bit, std::memory_order_release);
        }
        void* ptrs[] = {static_cast<void*>(&args)..., nullptr};
        CUlaunchConfig cfg = {};
        cfg.gridDimX = config.grid_x, cfg.gridDimY = config.grid_y, cfg.gridDimZ = config.grid_z;
        cfg.blockDimX = config.block_x, cfg.blockDimY = 1, cfg.blockDimZ = 1;
        cfg.sharedMemBytes = config.smem_bytes;
        cfg.hStream = config.stream;
        cfg.attrs = nullptr, cfg.numAttrs = 0;
        DG_CU_CHECK(d.cuLaunchKernelEx(&cfg, reinterpret_cast<CUfunction>(kernel), ptrs, nullptr),
                    cat("launching ", symbol, " (grid ", config.grid_x, "x", config.grid_y, "x", config.grid_z,
                        ", block ", config.block_x, ", smem ", config.smem_bytes, ")"));
    }
};

} // namespace deep_gemm::jit
