#pragma once

// NOTES: three levels, cheapest first. (1) An in-process map from (arch, source) to a loaded kernel: a warm call
// costs a hash lookup. (2) A disk cache under `DG_JIT_CACHE_DIR` (default `~/.deep_gemm`), keyed by source,
// flags, compiler version and a hash of our device headers, written atomically. (3) The compiler.

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "compiler.hpp"
#include "device_runtime.hpp"
#include "kernel_runtime.hpp"

namespace deep_gemm::jit {

inline std::string cache_root() {
    auto dir = get_env("DG_JIT_CACHE_DIR");
    if (dir.empty())
        dir = get_env("HOME", "/tmp") + "/.deep_gemm";
    return path_join(dir, "cache");
}

struct CubinEntry {
    std::string cubin;
    std::string log;
    std::string dir;
    bool from_disk = false;
};

// Compile (or fetch from disk) the cubin of one generated source for one architecture. `announce`: say on stderr
// that a kernel is being compiled (a kernel call's first use: it takes seconds) unless `DG_JIT_QUIET` is set; the
// compile-only tool prints its own progress and leaves it off.
inline CubinEntry get_cubin(const std::string& symbol, const std::string& source, const std::string& arch,
                            bool announce = false) {
    auto& compiler = get_compiler();
    Hasher h;
    h.update(source);
    h.update(arch);
    h.update(compiler.signature());
    h.update(cat(Compiler::common_flags(arch)));
    h.update(JitPaths::get().get_headers_hash());
    const auto dir = path_join(cache_root(), cat(symbol, ".", arch, ".", h.hex()));
    const auto cubin_path = path_join(dir, "kernel.cubin");
    const bool debug = get_env_flag("DG_JIT_DEBUG");

    if (is_regular_file(cubin_path)) {
        std::string log;
        if (is_regular_file(path_join(dir, "kernel.log")))
            log = read_file(path_join(dir, "kernel.log"));
        if (debug)
            std::fprintf(stderr, "deep_gemm: disk cache hit %s\n", cubin_path.c_str());
        return {read_file(cubin_path), log, dir, true};
    }

    if (announce and not get_env_flag("DG_JIT_QUIET"))
        std::fprintf(stderr, "deep_gemm: compiling %s for %s, first use (cached afterwards in %s; "
                     "DG_JIT_QUIET=1 silences this)\n", symbol.c_str(), arch.c_str(), cache_root().c_str());
    const auto start = std::chrono::steady_clock::now();
    auto output = compiler.compile(source, arch, true);
    if (debug) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "deep_gemm: compiled %s for %s with %s in %.2f s\n", symbol.c_str(), arch.c_str(),
                     compiler.signature().c_str(), secs);
    }
    // The source and log first, the cubin last: the cubin's presence marks a complete entry
    write_file_atomic(path_join(dir, "kernel.cu"), source);
    write_file_atomic(path_join(dir, "kernel.log"), output.log);
    write_file_atomic(cubin_path, output.cubin);
    if (get_env_flag("DG_JIT_DUMP_SASS")) {
        // The toolkit's cuobjdump next to nvcc when there is one, else a pip package's (`nvidia/cu13/bin` or
        // `nvidia/cuda_cuobjdump/bin`, found from the `nvidia/<package>/lib` directories NVRTC is looked up in),
        // else the first on PATH
        std::string tool = "cuobjdump";
        std::vector<std::string> bins;
        for (const auto& home: {get_env("CUDA_HOME"), JitPaths::get().cuda_home})
            if (not home.empty()) bins.push_back(path_join(home, "bin"));
        for (const auto& lib: JitPaths::get().nvrtc_dirs) {
            bins.push_back(path_join(lib, "../bin"));
            for (const auto& package: {"cu13", "cu12", "cuda_cuobjdump"})
                bins.push_back(path_join(lib, cat("../../", package, "/bin")));
        }
        for (const auto& bin: bins) {
            if (is_regular_file(path_join(bin, "cuobjdump"))) {
                tool = path_join(bin, "cuobjdump");
                break;
            }
        }
        const auto [code, sass] = run_command(shell_quote(tool) + " -sass " + shell_quote(cubin_path));
        std::fprintf(stderr, "%s\n", code == 0 ? sass.c_str() : cat("deep_gemm: DG_JIT_DUMP_SASS: ", tool,
                     " failed: ", sass).c_str());
    }
    return {std::move(output.cubin), std::move(output.log), dir, false};
}

// Resource usage of one kernel, read from ptxas' verbose report
struct ResourceUsage {
    int registers = -1, static_smem = 0, stack_frame = 0, spill_stores = 0, spill_loads = 0;
    bool found = false;
};

inline int number_before(const std::string& text, size_t pos) {
    // Parses the integer that ends right before `pos` (skipping one space)
    size_t end = pos;
    while (end > 0 and text[end - 1] == ' ') -- end;
    size_t begin = end;
    while (begin > 0 and std::isdigit(static_cast<unsigned char>(text[begin - 1]))) -- begin;
    return begin == end ? 0 : std::stoi(text.substr(begin, end - begin));
}

inline ResourceUsage parse_ptxas_log(const std::string& log, const std::string& symbol) {
    ResourceUsage usage;
    const auto entry = log.find(cat("Compiling entry function '", symbol, "'"));
    if (entry == std::string::npos)
        return usage;
    const auto next_entry = log.find("Compiling entry function", entry + 1);
    const auto section = log.substr(entry, next_entry == std::string::npos ? std::string::npos : next_entry - entry);
    const auto find_num = [&](const std::string& suffix) {
        const auto p = section.find(suffix);
        return p == std::string::npos ? 0 : number_before(section, p);
    };
    usage.stack_frame = find_num("bytes stack frame");
    usage.spill_stores = find_num("bytes spill stores");
    usage.spill_loads = find_num("bytes spill loads");
    usage.static_smem = find_num("bytes smem");
    if (const auto p = section.find(" registers"); p != std::string::npos) {
        usage.registers = number_before(section, p);
        usage.found = true;
    }
    return usage;
}

// The kernel families' warm-path identity of a compiled kernel: integers only (see `lookup_or_build_keyed`)
struct KernelKey {
    uint32_t family;        // `KernelFamily` (jit_kernels/registry.hpp)
    int32_t device;
    uint64_t config;        // the family's packed config

    bool operator==(const KernelKey& o) const {
        return family == o.family and device == o.device and config == o.config;
    }
};

struct KernelKeyHash {
    size_t operator()(const KernelKey& k) const {
        return std::hash<uint64_t>()(k.config ^ (static_cast<uint64_t>(k.family) << 56) ^
                                     (static_cast<uint64_t>(static_cast<uint32_t>(k.device)) << 40));
    }
};

class KernelCache {
    std::shared_mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<KernelRuntime>> kernels;
    std::unordered_map<KernelKey, std::shared_ptr<KernelRuntime>, KernelKeyHash> keyed;

public:
    static KernelCache& get() {
        static KernelCache cache;
        return cache;
    }

    std::shared_ptr<KernelRuntime> lookup_or_build(const std::string& symbol, const std::string& source,
                                                   const std::string& arch) {
        std::string key = arch;
        key += '\n';
        key += source;
        {
            std::shared_lock lock(mutex);
            if (const auto it = kernels.find(key); it != kernels.end())
                return it->second;
        }
        // NOTES: compile without holding the lock, so other kernels stay usable meanwhile
        const auto entry = get_cubin(symbol, source, arch, true);
        if (get_env_flag("DG_JIT_PTXAS_CHECK")) {
            const auto usage = parse_ptxas_log(entry.log, symbol);
            DG_RUNTIME_CHECK(usage.stack_frame == 0 and usage.spill_stores == 0 and usage.spill_loads == 0,
                             "deep_gemm: DG_JIT_PTXAS_CHECK: kernel ", symbol, " uses local memory (stack frame ",
                             usage.stack_frame, " B, spill stores ", usage.spill_stores, " B, spill loads ",
                             usage.spill_loads, " B)");
        }
        auto runtime = std::make_shared<KernelRuntime>(entry.cubin, symbol);
        std::unique_lock lock(mutex);
        return kernels.emplace(std::move(key), std::move(runtime)).first->second;
    }

    // The warm path of a launch: a kernel found by (family, packed config, device) with no string built or hashed.
    // `source` and `symbol` are callables, run only on the first call for that key (which goes through
    // `lookup_or_build`, so the source-keyed memory cache and the disk cache still apply). The pointer stays valid
    // for the life of the process (entries are never removed).
    template <typename Source, typename Symbol>
    KernelRuntime* lookup_or_build_keyed(uint32_t family, uint64_t config, int device, const Source& source,
                                         const Symbol& symbol) {
        const KernelKey key{family, device, config};
        {
            std::shared_lock lock(mutex);
            if (const auto it = keyed.find(key); it != keyed.end())
                return it->second.get();
        }
        auto runtime = lookup_or_build(symbol(), source(), DeviceRuntime::compile_target(device));
        std::unique_lock lock(mutex);
        return keyed.emplace(key, std::move(runtime)).first->second.get();
    }

    size_t size() {
        std::shared_lock lock(mutex);
        return kernels.size();
    }
};

} // namespace deep_gemm::jit
