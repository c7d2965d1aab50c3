#pragma once

// NOTES: the small amount of OS plumbing the JIT needs: environment variables, files written atomically
// (so tensor-parallel ranks never see a half-written cubin), and running a compiler with its output captured.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "exception.hpp"
#include "format.hpp"

namespace deep_gemm {

inline std::string get_env(const char* name, const std::string& default_value = "") {
    const char* v = std::getenv(name);
    return (v == nullptr or *v == '\0') ? default_value : std::string(v);
}

inline bool get_env_flag(const char* name) {
    const auto v = get_env(name);
    return not v.empty() and v != "0" and v != "false" and v != "False" and v != "off";
}

inline int get_env_int(const char* name, int default_value) {
    const auto v = get_env(name);
    if (v.empty())
        return default_value;
    char* end = nullptr;
    const long x = std::strtol(v.c_str(), &end, 10);
    DG_CHECK(end != nullptr and *end == '\0', "environment variable ", name, " must be an integer; got '", v, "'");
    return static_cast<int>(x);
}

inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    DG_RUNTIME_CHECK(in.good(), "deep_gemm: cannot read file ", path.string());
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return data;
}

inline std::string unique_suffix() {
    static thread_local std::mt19937_64 rng(std::random_device{}() ^ (static_cast<unsigned long long>(getpid()) << 20));
    return cat(getpid(), ".", hex64(rng()));
}

// Write to a temporary file in the same directory, then `rename` over the target: readers see either no
// file or the whole file, never a partial one, even with several processes writing the same path
inline void write_file_atomic(const std::filesystem::path& path, const std::string& data) {
    std::filesystem::create_directories(path.parent_path());
    const auto tmp = path.parent_path() / cat(".", path.filename().string(), ".tmp.", unique_suffix());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        DG_RUNTIME_CHECK(out.good(), "deep_gemm: cannot write file ", tmp.string());
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        out.flush();
        DG_RUNTIME_CHECK(out.good(), "deep_gemm: failed writing file ", tmp.string());
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        DG_RUNTIME_CHECK(false, "deep_gemm: cannot rename a temporary file into ", path.string());
    }
}

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (const char c: s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

// Run a command through the shell; returns (exit code, stdout+stderr)
inline std::pair<int, std::string> run_command(const std::string& command) {
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    DG_RUNTIME_CHECK(pipe != nullptr, "deep_gemm: cannot start command: ", command);
    std::string output;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0)
        output.append(buffer, n);
    const int status = pclose(pipe);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return {code, output};
}

} // namespace deep_gemm
