#pragma once

// Internal, for benchmarks/host_overhead.py: the floor of one kernel launch on this host. A tight C++ loop of `n`
// launches of an empty kernel (compiled through our JIT) on the current device and stream, timed on the CPU, with a
// synchronization only before and after the loop. Modes:
//   0: `cuLaunchKernelEx` of the context-independent `CUkernel` cast to `CUfunction` (the launch path before the
//      per-device `CUfunction` cache; the fallback of `KernelRuntime::launch_params`)
//   1: `KernelRuntime::launch_params`: `cuLaunchKernel` of the cached per-context `CUfunction` (the warm path)
//   2: `cudaLaunchKernel` through the CUDA runtime, of the same cubin loaded with `cudaLibraryLoadData` (a
//      `cudaKernel_t` passed as the function, as the runtime documents), the path `<<<...>>>` launches take

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <string>

#include "cache.hpp"
#include "device_runtime.hpp"

namespace deep_gemm::jit {

inline double launch_overhead_probe(int mode, int n) {
    DG_CHECK(0 <= mode and mode <= 2, "_launch_overhead_probe: `mode` must be 0 (cuLaunchKernelEx of the CUkernel), "
             "1 (cuLaunchKernel of the cached CUfunction) or 2 (cudaLaunchKernel); got ", mode);
    DG_CHECK(n > 0, "_launch_overhead_probe: `n` must be positive; got ", n);
    const int device = c10::cuda::current_device();
    const c10::cuda::CUDAGuard guard(device);
    const auto stream = at::cuda::getCurrentCUDAStream(device).stream();
    const std::string symbol = "dg_launch_overhead_probe";
    // Four arguments of the kinds the real kernels take (pointers, a 64-bit stride, an int)
    const std::string source = "extern \"C\" __global__ void dg_launch_overhead_probe(const void* a, void* b, "
                               "long long c, int d) {}\n";
    const auto arch = DeviceRuntime::compile_target(device);
    const auto runtime = KernelCache::get().lookup_or_build(symbol, source, arch);

    const void* a = nullptr;
    void* b = nullptr;
    long long c = 0;
    int d = 0;
    void* params[] = {&a, &b, &c, &d, nullptr};
    LaunchConfig config;
    config.grid_x = 1;
    config.block_x = 32;
    config.stream = stream;
    config.device = device;

    cudaLibrary_t library = nullptr;
    cudaKernel_t kernel = nullptr;
    if (mode == 2) {
        const auto cubin = get_cubin(symbol, source, arch).cubin;
        DG_RUNTIME_CHECK(cudaLibraryLoadData(&library, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0) ==
                         cudaSuccess, "_launch_overhead_probe: cudaLibraryLoadData failed");
        DG_RUNTIME_CHECK(cudaLibraryGetKernel(&kernel, library, symbol.c_str()) == cudaSuccess,
                         "_launch_overhead_probe: cudaLibraryGetKernel failed");
    }
    const auto launch_once = [&]() {
        if (mode == 0) {
            runtime->launch_context_free_params(config, params);
        } else if (mode == 1) {
            runtime->launch_params(config, params);
        } else {
            const auto e = cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(1), dim3(32), params, 0, stream);
            DG_RUNTIME_CHECK(e == cudaSuccess, "_launch_overhead_probe: cudaLaunchKernel failed: ", cudaGetErrorString(e));
        }
    };
    // Warm-up (the cold paths: function lookup, module load), then an empty queue before the timed loop
    runtime->prepare_device(device, 0);
    for (int i = 0; i < 8; ++i)
        launch_once();
    DG_RUNTIME_CHECK(cudaStreamSynchronize(stream) == cudaSuccess, "_launch_overhead_probe: cudaStreamSynchronize failed");
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i)
        launch_once();
    const auto stop = std::chrono::steady_clock::now();
    DG_RUNTIME_CHECK(cudaStreamSynchronize(stream) == cudaSuccess, "_launch_overhead_probe: cudaStreamSynchronize failed");
    if (library != nullptr)
        cudaLibraryUnload(library);
    return std::chrono::duration<double, std::micro>(stop - start).count() / n;
}

} // namespace deep_gemm::jit
