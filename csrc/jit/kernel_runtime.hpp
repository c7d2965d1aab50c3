#pragma once

// NOTES: a compiled kernel, loaded as a context-independent `CUlibrary`, so one load serves every device of the
// same architecture. A launch is a plain `cuLaunchKernel` of the kernel's `CUfunction` in the device's primary
// context (the one torch's streams and allocations live in), fetched once per device with `cuKernelGetFunction`.
// Before each launch the current context is compared with that primary context (one TLS read in the driver); should
// they differ (a thread that never made the device current, a caller's own context), the primary context is pushed
// for the launch. Measured on the H100 host (a C++ loop of empty-kernel launches; docs/PERF.md, "Runtime", run 12):
// an empty kernel costs 3.60 us per launch through `cuLaunchKernelEx` of the `CUkernel` (the first version), 3.28 us
// through the cached `CUfunction`, 3.74 us through `cudaLaunchKernel`: the driver's own cost, not the kernel lookup;
// this form is kept because it also launches correctly from a fresh thread (tests/test_launch_path.py).

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

    // `threads` per CTA with `smem_bytes` of dynamic shared memory on `stream` (of `device`), over a grid of
    // `grid_x` x `grid_y` x `grid_z` CTAs
    static LaunchConfig on(CUstream stream, int device, long long threads, long long smem_bytes, long long grid_x,
                           long long grid_y = 1, long long grid_z = 1) {
        LaunchConfig c;
        c.grid_x = static_cast<unsigned>(grid_x), c.grid_y = static_cast<unsigned>(grid_y);
        c.grid_z = static_cast<unsigned>(grid_z), c.block_x = static_cast<unsigned>(threads);
        c.smem_bytes = static_cast<unsigned>(smem_bytes), c.stream = stream, c.device = device;
        return c;
    }
};

class KernelRuntime {
    CUlibrary library = nullptr;
    CUkernel kernel = nullptr;
    std::string symbol;

    // Per device ordinal: the kernel's function in the device's primary context (null until first prepared) and the
    // dynamic shared-memory limit already raised there. Written under `mutex` only; `context` is written before
    // `function` is published (release), so a reader that sees the function sees its context.
    static constexpr int kMaxDevices = 64;
    struct DeviceSlot {
        std::atomic<CUfunction> function{nullptr};
        std::atomic<unsigned> smem_limit{0};
        CUcontext context = nullptr;
    };
    DeviceSlot slots[kMaxDevices];
    std::mutex mutex;

    std::string describe(const LaunchConfig& c) const {
        return cat("launching ", symbol, " (grid ", c.grid_x, "x", c.grid_y, "x", c.grid_z, ", block ", c.block_x,
                   ", smem ", c.smem_bytes, ")");
    }

    // The cold path (first launch on a device, or a larger shared-memory size): fetch the function in the device's
    // primary context and raise the dynamic shared-memory limit, of the context-independent kernel (for launches of
    // the `CUkernel`) and of the function (for launches of the `CUfunction`: the driver documents that a function's
    // own attribute overrides the kernel's). Both are set, so either launch path sees the raised limit.
    // NOTES: raised for any dynamic size, not only > 48 KB: static shared memory counts against the same 48 KB
    // default (a kernel with 128 B static + 48 KB dynamic failed to launch on the H100 without it)
    void prepare(int device, unsigned smem_bytes) {
        auto& d = Driver::get();
        std::lock_guard<std::mutex> lock(mutex);
        auto& slot = slots[device];
        CUfunction function = slot.function.load(std::memory_order_relaxed);
        const bool raise = smem_bytes > slot.smem_limit.load(std::memory_order_relaxed);
        if (function != nullptr and not raise)
            return;
        CUdevice dev = 0;
        DG_CU_CHECK(d.cuDeviceGet(&dev, device), cat("cuDeviceGet(", device, ")"));
        CUcontext context = slot.context;
        if (context == nullptr) {
            // NOTES: retained for the life of the process, like the library (torch keeps the same context alive)
            DG_CU_CHECK(d.cuDevicePrimaryCtxRetain(&context, dev),
                        cat("retaining the primary context of device ", device, " for ", symbol));
            slot.context = context;     // read by launches only once `function` is published
        }
        // The function is looked up in the current context: push the primary context for the lookup and the
        // attribute, so the result never depends on what the calling thread has current
        DG_CU_CHECK(d.cuCtxPushCurrent(context), cat("making the primary context of device ", device, " current"));
        CUresult result = CUDA_SUCCESS;
        std::string what;
        if (function == nullptr) {
            result = d.cuKernelGetFunction(&function, kernel);
            what = cat("getting the function of ", symbol, " on device ", device);
        }
        if (result == CUDA_SUCCESS and raise) {
            result = d.cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                            static_cast<int>(smem_bytes), kernel, dev);
            if (result == CUDA_SUCCESS)
                result = d.cuFuncSetAttribute(function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                              static_cast<int>(smem_bytes));
            what = cat("raising the shared-memory limit of ", symbol, " to ", smem_bytes, " bytes");
        }
        CUcontext popped = nullptr;
        const CUresult pop_result = d.cuCtxPopCurrent(&popped);
        DG_CU_CHECK(result, what);
        DG_CU_CHECK(pop_result, "restoring the caller's CUDA context");
        slot.function.store(function, std::memory_order_release);
        if (raise)
            slot.smem_limit.store(smem_bytes, std::memory_order_release);
    }

    // A device ordinal outside the slots: the attribute of the context-independent kernel, set on every launch
    void prepare_unslotted(int device, unsigned smem_bytes) {
        if (smem_bytes == 0)
            return;
        auto& d = Driver::get();
        std::lock_guard<std::mutex> lock(mutex);
        CUdevice dev = 0;
        DG_CU_CHECK(d.cuDeviceGet(&dev, device), cat("cuDeviceGet(", device, ")"));
        DG_CU_CHECK(d.cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                           static_cast<int>(smem_bytes), kernel, dev),
                    cat("raising the shared-memory limit of ", symbol, " to ", smem_bytes, " bytes"));
    }

    static bool slotted(int device) { return 0 <= device and device < kMaxDevices; }

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

    // The warm path: two atomic loads, the current-context read, `cuLaunchKernel`
    void launch_params(const LaunchConfig& config, void** params) {
        auto& d = Driver::get();
        const int device = config.device;
        if (not slotted(device)) {
            prepare_unslotted(device, config.smem_bytes);
            return launch_context_free_params(config, params);
        }
        auto& slot = slots[device];
        CUfunction function = slot.function.load(std::memory_order_acquire);
        if (function == nullptr or config.smem_bytes > slot.smem_limit.load(std::memory_order_acquire)) {
            prepare(device, config.smem_bytes);
            function = slot.function.load(std::memory_order_acquire);
        }
        CUcontext current = nullptr;
        const bool pushed = d.cuCtxGetCurrent(&current) != CUDA_SUCCESS or current != slot.context;
        if (pushed) {
            // NOTES: a thread with no context current (its first CUDA call: torch's guard does not bind the runtime's
            // context when the device index already matches) or another one. The context-independent launch does
            // not help there (the H100 answered CUDA_ERROR_INVALID_CONTEXT on the default stream), so the device's
            // primary context is made current for this launch only and the caller's restored
            DG_CU_CHECK(d.cuCtxPushCurrent(slot.context), cat("making the primary context of device ", device,
                                                              " current to launch ", symbol));
        }
        const CUresult result = d.cuLaunchKernel(function, config.grid_x, config.grid_y, config.grid_z,
                                                 config.block_x, 1, 1, config.smem_bytes, config.stream, params,
                                                 nullptr);
        if (pushed) {
            CUcontext popped = nullptr;
            DG_CU_CHECK(d.cuCtxPopCurrent(&popped), "restoring the caller's CUDA context");
        }
        DG_CU_CHECK(result, describe(config));
    }

    // The context-independent path: `cuLaunchKernelEx` of the `CUkernel`, the driver finding the context from the
    // stream (or the current one for the null stream). The fallback of `launch_params` for device ordinals outside
    // the slots. The shared-memory limit must have been raised (`launch_params` does).
    void launch_context_free_params(const LaunchConfig& config, void** params) {
        CUlaunchConfig cfg = {};
        cfg.gridDimX = config.grid_x, cfg.gridDimY = config.grid_y, cfg.gridDimZ = config.grid_z;
        cfg.blockDimX = config.block_x, cfg.blockDimY = 1, cfg.blockDimZ = 1;
        cfg.sharedMemBytes = config.smem_bytes;
        cfg.hStream = config.stream;
        cfg.attrs = nullptr, cfg.numAttrs = 0;
        DG_CU_CHECK(Driver::get().cuLaunchKernelEx(&cfg, reinterpret_cast<CUfunction>(kernel), params, nullptr),
                    describe(config));
    }

    template <typename... Args>
    void launch(const LaunchConfig& config, Args... args) {
        void* params[] = {static_cast<void*>(&args)..., nullptr};
        launch_params(config, params);
    }
};

} // namespace deep_gemm::jit
