#pragma once

// NOTES: the small amount of OS plumbing the JIT needs: environment variables, files written atomically
// (so tensor-parallel ranks never see a half-written cubin), and running a compiler with its output captured.

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <random>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "exception.hpp"
#include "format.hpp"

// NOTES: plain POSIX calls only. `std::filesystem` and iostreams are not used in the extension: libtorch exports
// its own copies of some libstdc++ symbols, and an extension built by another g++ can bind to them and crash
// (seen on the GPU machine: `std::filesystem::remove_all` resolved into libtorch.so and segfaulted).

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

inline std::string path_join(const std::string& a, const std::string& b) {
    if (a.empty()) return b;
    return a.back() == '/' ? a + b : a + "/" + b;
}

inline std::string parent_path(const std::string& p) {
    const auto pos = p.find_last_of('/');
    return pos == std::string::npos ? std::string(".") : (pos == 0 ? std::string("/") : p.substr(0, pos));
}

inline std::string file_name(const std::string& p) {
    const auto pos = p.find_last_of('/');
    return pos == std::string::npos ? p : p.substr(pos + 1);
}

inline bool path_exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

inline bool is_regular_file(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 and S_ISREG(st.st_mode);
}

// `mkdir -p`; concurrent creators are fine (EEXIST is success)
inline void make_dirs(const std::string& dir) {
    if (dir.empty() or path_exists(dir))
        return;
    make_dirs(parent_path(dir));
    DG_RUNTIME_CHECK(::mkdir(dir.c_str(), 0755) == 0 or errno == EEXIST, "deep_gemm: cannot create directory ", dir,
                     ": ", std::strerror(errno));
}

inline std::string read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    DG_RUNTIME_CHECK(fd >= 0, "deep_gemm: cannot read file ", path, ": ", std::strerror(errno));
    std::string data;
    char buffer[1 << 16];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0)
        data.append(buffer, static_cast<size_t>(n));
    ::close(fd);
    DG_RUNTIME_CHECK(n == 0, "deep_gemm: failed reading file ", path);
    return data;
}

inline std::string unique_suffix() {
    static thread_local std::mt19937_64 rng(std::random_device{}() ^ (static_cast<unsigned long long>(getpid()) << 20));
    return cat(getpid(), ".", hex64(rng()));
}

inline void write_file(const std::string& path, const std::string& data) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    DG_RUNTIME_CHECK(fd >= 0, "deep_gemm: cannot write file ", path, ": ", std::strerror(errno));
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n <= 0) {
            ::close(fd);
            DG_RUNTIME_CHECK(false, "deep_gemm: failed writing file ", path, ": ", std::strerror(errno));
        }
        done += static_cast<size_t>(n);
    }
    ::close(fd);
}

// Write to a temporary file in the same directory, then `rename` over the target: readers see either no
// file or the whole file, never a partial one, even with several processes writing the same path
inline void write_file_atomic(const std::string& path, const std::string& data) {
    make_dirs(parent_path(path));
    const auto tmp = path_join(parent_path(path), cat(".", file_name(path), ".tmp.", unique_suffix()));
    write_file(tmp, data);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        DG_RUNTIME_CHECK(false, "deep_gemm: cannot rename a temporary file into ", path, ": ", std::strerror(err));
    }
}

// `rm -rf dir`, best effort
inline void remove_tree(const std::string& dir) {
    ::nftw(dir.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
           FTW_DEPTH | FTW_PHYS);
}

// Every regular file below `dir`, as paths relative to `dir`, sorted
inline std::vector<std::string> list_files_recursive(const std::string& dir, const std::string& prefix = "") {
    std::vector<std::string> files;
    DIR* d = ::opendir(path_join(dir, prefix).c_str());
    if (d == nullptr)
        return files;
    while (const auto* entry = ::readdir(d)) {
        const std::string name = entry->d_name;
        if (name == "." or name == "..")
            continue;
        const auto rel = prefix.empty() ? name : path_join(prefix, name);
        if (is_regular_file(path_join(dir, rel))) {
            files.push_back(rel);
        } else {
            auto sub = list_files_recursive(dir, rel);
            files.insert(files.end(), sub.begin(), sub.end());
        }
    }
    ::closedir(d);
    std::sort(files.begin(), files.end());
    return files;
}

inline std::string temp_dir() { return get_env("TMPDIR", "/tmp"); }

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
