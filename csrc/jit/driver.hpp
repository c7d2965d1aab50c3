#pragma once

// NOTES: the extension links only what torch already brings. The CUDA driver (`libcuda.so.1`) and NVRTC are
// opened with `dlopen` at first use, so `import deep_gemm` works on machines without a GPU or a toolkit, and
// a missing library becomes a clear error at the first kernel call instead of an import failure.

#include <cuda.h>
#include <dlfcn.h>
#include <mutex>
#include <string>
#include <vector>

#include "../utils/exception.hpp"
#include "../utils/format.hpp"

namespace deep_gemm::jit {

class Driver {
public:
#define DG_DRIVER_FN(name) decltype(&::name) name = nullptr;
    DG_DRIVER_FN(cuGetErrorString)
    DG_DRIVER_FN(cuGetErrorName)
    DG_DRIVER_FN(cuCtxGetDevice)
    DG_DRIVER_FN(cuLibraryLoadData)
    DG_DRIVER_FN(cuLibraryUnload)
    DG_DRIVER_FN(cuLibraryGetKernel)
    DG_DRIVER_FN(cuKernelSetAttribute)
    DG_DRIVER_FN(cuKernelGetAttribute)
    DG_DRIVER_FN(cuLaunchKernelEx)
    // The warm launch path (kernel_runtime.hpp): a per-context `CUfunction` launched with plain `cuLaunchKernel`
    DG_DRIVER_FN(cuDeviceGet)
    DG_DRIVER_FN(cuDevicePrimaryCtxRetain)
    DG_DRIVER_FN(cuCtxGetCurrent)
    DG_DRIVER_FN(cuCtxPushCurrent)
    DG_DRIVER_FN(cuCtxPopCurrent)
    DG_DRIVER_FN(cuKernelGetFunction)
    DG_DRIVER_FN(cuFuncSetAttribute)
    DG_DRIVER_FN(cuLaunchKernel)
#undef DG_DRIVER_FN

    static Driver& get() {
        static Driver driver;
        return driver;
    }

    std::string error_string(CUresult result) const {
        const char *name = nullptr, *desc = nullptr;
        if (cuGetErrorName != nullptr) cuGetErrorName(result, &name);
        if (cuGetErrorString != nullptr) cuGetErrorString(result, &desc);
        return cat(name ? name : "CUDA_ERROR", " (", static_cast<int>(result), "): ", desc ? desc : "unknown error");
    }

private:
    Driver() {
        // `RTLD_NOLOAD` first: torch has usually loaded the driver already
        void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (handle == nullptr)
            handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
        DG_RUNTIME_CHECK(handle != nullptr,
                         "deep_gemm: cannot load the CUDA driver library libcuda.so.1 (searched the dynamic loader path: "
                         "LD_LIBRARY_PATH, ldconfig's cache, /usr/lib*): ", dlerror_string(),
                         ". Install an NVIDIA driver (>= 570 for CUDA 12.8) or add its directory to LD_LIBRARY_PATH.");
        using GetProc = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
        const auto get_proc = reinterpret_cast<GetProc>(dlsym(handle, "cuGetProcAddress_v2"));
        DG_RUNTIME_CHECK(get_proc != nullptr, "deep_gemm: libcuda.so.1 has no cuGetProcAddress_v2; the NVIDIA driver "
                         "is too old (need a driver for CUDA >= 12.8)");
        const auto load = [&](const char* symbol, auto& fn) {
            void* ptr = nullptr;
            CUdriverProcAddressQueryResult status;
            const auto result = get_proc(symbol, &ptr, 12080, CU_GET_PROC_ADDRESS_DEFAULT, &status);
            DG_RUNTIME_CHECK(result == CUDA_SUCCESS and ptr != nullptr, "deep_gemm: the CUDA driver does not provide ",
                             symbol, "; update the NVIDIA driver (need CUDA >= 12.8 support)");
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(ptr);
        };
        load("cuGetErrorString", cuGetErrorString);
        load("cuGetErrorName", cuGetErrorName);
        load("cuCtxGetDevice", cuCtxGetDevice);
        load("cuLibraryLoadData", cuLibraryLoadData);
        load("cuLibraryUnload", cuLibraryUnload);
        load("cuLibraryGetKernel", cuLibraryGetKernel);
        load("cuKernelSetAttribute", cuKernelSetAttribute);
        load("cuKernelGetAttribute", cuKernelGetAttribute);
        load("cuLaunchKernelEx", cuLaunchKernelEx);
        // NOTES: base names (cuGetProcAddress picks the versioned entry, e.g. cuCtxPushCurrent_v2, for 12080); the
        // members of versioned names carry cuda.h's `_v2` spelling through its macros, consistently at every use
        load("cuDeviceGet", cuDeviceGet);
        load("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain);
        load("cuCtxGetCurrent", cuCtxGetCurrent);
        load("cuCtxPushCurrent", cuCtxPushCurrent);
        load("cuCtxPopCurrent", cuCtxPopCurrent);
        load("cuKernelGetFunction", cuKernelGetFunction);
        load("cuFuncSetAttribute", cuFuncSetAttribute);
        load("cuLaunchKernel", cuLaunchKernel);
    }

    static std::string dlerror_string() {
        const char* e = dlerror();
        return e ? e : "unknown dlopen error";
    }
};

#define DG_CU_CHECK(call, what) \
    do { \
        const CUresult _dg_result = (call); \
        DG_RUNTIME_CHECK(_dg_result == CUDA_SUCCESS, "deep_gemm: ", what, " failed: ", \
                         deep_gemm::jit::Driver::get().error_string(_dg_result)); \
    } while (0)

} // namespace deep_gemm::jit
