#pragma once

// NOTES: two interchangeable compilers turn a generated source into a cubin: NVCC (default; `$CUDA_HOME/bin/nvcc`
// or `DG_JIT_NVCC_COMPILER`) and NVRTC (`DG_JIT_USE_NVRTC=1`, loaded with dlopen). Kernel headers include nothing
// from the toolkit, so NVRTC needs only our include directory.

#include <algorithm>
#include <chrono>
#include <dlfcn.h>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../utils/exception.hpp"
#include "../utils/format.hpp"
#include "../utils/hash.hpp"
#include "../utils/system.hpp"

namespace deep_gemm::jit {

// Set once from Python (`deep_gemm._C.init`): where our device headers and the toolkit live
struct JitPaths {
    std::string include_dir;                    // .../deep_gemm/include
    std::string cuda_home;                      // best guess from Python (torch.utils.cpp_extension) or env
    std::vector<std::string> nvrtc_dirs;        // candidate directories holding libnvrtc.so.*
    std::string headers_hash;                   // hash of every file under include/deep_gemm

    static JitPaths& get() {
        static JitPaths paths;
        return paths;
    }

    void set(const std::string& include, const std::string& home, const std::vector<std::string>& dirs) {
        include_dir = include;
        cuda_home = home;
        nvrtc_dirs = dirs;
        headers_hash.clear();
    }

    const std::string& get_headers_hash() {
        static std::mutex mutex;
        std::lock_guard<std::mutex> lock(mutex);
        if (headers_hash.empty()) {
            DG_RUNTIME_CHECK(not include_dir.empty(), "deep_gemm: the JIT is not initialized (deep_gemm._C.init was not called)");
            const auto root = path_join(include_dir, "deep_gemm");
            const auto files = list_files_recursive(root);
            DG_RUNTIME_CHECK(not files.empty(), "deep_gemm: no device headers found under ", root);
            Hasher h;
            for (const auto& f: files) {
                h.update(f);
                h.update(read_file(path_join(root, f)));
            }
            headers_hash = h.hex();
        }
        return headers_hash;
    }
};

struct CompileOutput {
    std::string cubin;
    std::string log;        // the compiler's messages (ptxas -v lines when asked for)
};

class Compiler {
public:
    virtual ~Compiler() = default;
    // Identifies the compiler and its version: part of the disk-cache key
    virtual std::string signature() = 0;
    virtual CompileOutput compile(const std::string& source, const std::string& arch, bool ptxas_verbose) = 0;

    static std::vector<std::string> common_flags(const std::string& arch) {
        std::vector<std::string> flags = {"-std=c++17", cat("--gpu-architecture=", arch), "-DNDEBUG"};
        if (get_env_flag("DG_JIT_WITH_LINEINFO"))
            flags.push_back("-lineinfo");
        return flags;
    }
};

// ---------------------------------------------------------------------------------------------------------------------
class NVCCCompiler final : public Compiler {
    std::string nvcc_path, version;

public:
    NVCCCompiler() {
        const auto& paths = JitPaths::get();
        std::vector<std::string> candidates;
        if (const auto env = get_env("DG_JIT_NVCC_COMPILER"); not env.empty())
            candidates = {env};
        else {
            if (const auto home = get_env("CUDA_HOME"); not home.empty()) candidates.push_back(home + "/bin/nvcc");
            if (const auto home = get_env("CUDA_PATH"); not home.empty()) candidates.push_back(home + "/bin/nvcc");
            if (not paths.cuda_home.empty()) candidates.push_back(paths.cuda_home + "/bin/nvcc");
            candidates.push_back("/usr/local/cuda/bin/nvcc");
        }
        for (const auto& c: candidates) {
            if (is_regular_file(c)) { nvcc_path = c; break; }
        }
        DG_RUNTIME_CHECK(not nvcc_path.empty(), "deep_gemm: cannot find nvcc (looked at ", candidates,
                         "). Install the CUDA toolkit >= 12.8, set CUDA_HOME or DG_JIT_NVCC_COMPILER, "
                         "or set DG_JIT_USE_NVRTC=1 to compile with NVRTC");
        const auto [code, out] = run_command(shell_quote(nvcc_path) + " --version");
        DG_RUNTIME_CHECK(code == 0, "deep_gemm: `", nvcc_path, " --version` failed: ", out);
        const auto pos = out.find("release ");
        DG_RUNTIME_CHECK(pos != std::string::npos, "deep_gemm: cannot parse the version of ", nvcc_path, ": ", out);
        int major = 0, minor = 0;
        std::sscanf(out.c_str() + pos + 8, "%d.%d", &major, &minor);
        DG_RUNTIME_CHECK(major * 100 + minor >= 1208, "deep_gemm: ", nvcc_path, " is CUDA ", major, ".", minor,
                         "; SM120 kernels need CUDA >= 12.8 (sm_121a: >= 12.9)");
        version = trim(out.substr(pos));
    }

    std::string signature() override { return cat("nvcc ", version); }

    CompileOutput compile(const std::string& source, const std::string& arch, bool ptxas_verbose) override {
        const auto& paths = JitPaths::get();
        const auto dir = path_join(temp_dir(), cat("deep_gemm.", unique_suffix()));
        make_dirs(dir);
        const auto src = path_join(dir, "kernel.cu"), cubin = path_join(dir, "kernel.cubin");
        write_file(src, source);
        std::string command = shell_quote(nvcc_path) + " -cubin -O3 --expt-relaxed-constexpr";
        for (const auto& f: common_flags(arch))
            command += " " + f;
        command += " -I" + shell_quote(paths.include_dir);
        command += " --diag-suppress=177,550";
        if (ptxas_verbose or get_env_flag("DG_JIT_PTXAS_VERBOSE"))
            command += " -Xptxas -v";
        command += " " + shell_quote(src) + " -o " + shell_quote(cubin);
        if (get_env_flag("DG_JIT_PRINT_COMPILER_COMMAND"))
            std::fprintf(stderr, "deep_gemm: %s\n", command.c_str());
        auto [code, log] = run_command(command);
        if (code != 0) {
            remove_tree(dir);
            DG_RUNTIME_CHECK(false, "deep_gemm: NVCC failed to compile a kernel for ", arch, ":\n", log,
                             "\ncommand: ", command);
        }
        if (get_env_flag("DG_JIT_DUMP_PTX")) {
            const auto [pcode, plog] = run_command(shell_quote(nvcc_path) + " -ptx -O3 " +
                cat("--gpu-architecture=", arch) + " -std=c++17 -I" + shell_quote(paths.include_dir) + " " +
                shell_quote(src) + " -o " + shell_quote(path_join(dir, "kernel.ptx")));
            if (pcode == 0)
                std::fprintf(stderr, "%s\n", read_file(path_join(dir, "kernel.ptx")).c_str());
        }
        CompileOutput result{read_file(cubin), log};
        remove_tree(dir);
        return result;
    }
};

// ---------------------------------------------------------------------------------------------------------------------
class NVRTCCompiler final : public Compiler {
    using nvrtcProgram = void*;
    int (*nvrtcVersion)(int*, int*) = nullptr;
    int (*nvrtcCreateProgram)(nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
    int (*nvrtcCompileProgram)(nvrtcProgram, int, const char* const*) = nullptr;
    int (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t*) = nullptr;
    int (*nvrtcGetProgramLog)(nvrtcProgram, char*) = nullptr;
    int (*nvrtcGetCUBINSize)(nvrtcProgram, size_t*) = nullptr;
    int (*nvrtcGetCUBIN)(nvrtcProgram, char*) = nullptr;
    int (*nvrtcDestroyProgram)(nvrtcProgram*) = nullptr;
    std::string library, version;

public:
    NVRTCCompiler() {
        const auto& paths = JitPaths::get();
        std::vector<std::string> dirs;
        for (const auto& home: {get_env("CUDA_HOME"), paths.cuda_home, std::string("/usr/local/cuda")}) {
            if (not home.empty()) {
                dirs.push_back(home + "/lib64");
                dirs.push_back(home + "/lib");
            }
        }
        dirs.insert(dirs.end(), paths.nvrtc_dirs.begin(), paths.nvrtc_dirs.end());
        void* handle = nullptr;
        std::vector<std::string> tried;
        for (const auto& name: {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}) {
            for (const auto& d: dirs) {
                const auto p = d + "/" + name;
                if (is_regular_file(p) and (handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL)) != nullptr) {
                    library = p;
                    break;
                }
                tried.push_back(p);
            }
            if (handle == nullptr and (handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr)
                library = name;
            if (handle != nullptr)
                break;
        }
        DG_RUNTIME_CHECK(handle != nullptr, "deep_gemm: DG_JIT_USE_NVRTC=1 but NVRTC (libnvrtc.so.13/.so.12) was not "
                         "found; looked in ", tried, " and the dynamic loader path. Install nvidia-cuda-nvrtc "
                         "or the CUDA toolkit, or unset DG_JIT_USE_NVRTC to use nvcc");
        const auto load = [&](const char* symbol, auto& fn) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, symbol));
            DG_RUNTIME_CHECK(fn != nullptr, "deep_gemm: ", library, " has no symbol ", symbol);
        };
        load("nvrtcVersion", nvrtcVersion);
        load("nvrtcCreateProgram", nvrtcCreateProgram);
        load("nvrtcCompileProgram", nvrtcCompileProgram);
        load("nvrtcGetProgramLogSize", nvrtcGetProgramLogSize);
        load("nvrtcGetProgramLog", nvrtcGetProgramLog);
        load("nvrtcGetCUBINSize", nvrtcGetCUBINSize);
        load("nvrtcGetCUBIN", nvrtcGetCUBIN);
        load("nvrtcDestroyProgram", nvrtcDestroyProgram);
        int major = 0, minor = 0;
        nvrtcVersion(&major, &minor);
        DG_RUNTIME_CHECK(major * 100 + minor >= 1208, "deep_gemm: ", library, " is NVRTC ", major, ".", minor,
                         "; SM120 kernels need CUDA >= 12.8");
        version = cat(major, ".", minor);
    }

    std::string signature() override { return cat("nvrtc ", version); }

    CompileOutput compile(const std::string& source, const std::string& arch, bool ptxas_verbose) override {
        const auto& paths = JitPaths::get();
        std::vector<std::string> flags = common_flags(arch);
        flags.push_back("-I" + paths.include_dir);
        flags.push_back("--device-as-default-execution-space");
        flags.push_back("--diag-suppress=177,550");
        if (ptxas_verbose or get_env_flag("DG_JIT_PTXAS_VERBOSE"))
            flags.push_back("--ptxas-options=-v");
        std::vector<const char*> cflags;
        for (const auto& f: flags)
            cflags.push_back(f.c_str());
        if (get_env_flag("DG_JIT_PRINT_COMPILER_COMMAND"))
            std::fprintf(stderr, "deep_gemm: NVRTC %s with %s\n", library.c_str(), cat(flags).c_str());

        nvrtcProgram prog = nullptr;
        DG_RUNTIME_CHECK(nvrtcCreateProgram(&prog, source.c_str(), "kernel.cu", 0, nullptr, nullptr) == 0,
                         "deep_gemm: nvrtcCreateProgram failed");
        const int status = nvrtcCompileProgram(prog, static_cast<int>(cflags.size()), cflags.data());
        size_t log_size = 0;
        nvrtcGetProgramLogSize(prog, &log_size);
        std::string log(log_size, '\0');
        if (log_size > 0)
            nvrtcGetProgramLog(prog, log.data());
        if (status != 0) {
            nvrtcDestroyProgram(&prog);
            DG_RUNTIME_CHECK(false, "deep_gemm: NVRTC failed to compile a kernel for ", arch, ":\n", log);
        }
        size_t size = 0;
        nvrtcGetCUBINSize(prog, &size);
        std::string cubin(size, '\0');
        nvrtcGetCUBIN(prog, cubin.data());
        nvrtcDestroyProgram(&prog);
        return {cubin, log};
    }
};

inline Compiler& get_compiler() {
    static std::mutex mutex;
    static std::unique_ptr<Compiler> nvcc, nvrtc;
    std::lock_guard<std::mutex> lock(mutex);
    if (get_env_flag("DG_JIT_USE_NVRTC")) {
        if (not nvrtc) nvrtc = std::make_unique<NVRTCCompiler>();
        return *nvrtc;
    }
    if (not nvcc) nvcc = std::make_unique<NVCCCompiler>();
    return *nvcc;
}

} // namespace deep_gemm::jit
