#pragma once

// NOTES: a tiny string builder, so error messages and generated sources need neither iostreams nor fmt.

#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace deep_gemm {

inline void append(std::string& out, const std::string& s) { out += s; }
inline void append(std::string& out, std::string_view s) { out.append(s.data(), s.size()); }
inline void append(std::string& out, const char* s) { out += s; }
inline void append(std::string& out, char c) { out += c; }
inline void append(std::string& out, bool b) { out += b ? "true" : "false"; }

template <typename T>
requires std::is_integral_v<T>
inline void append(std::string& out, T v) { out += std::to_string(v); }

inline void append(std::string& out, double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%g", v);
    out += buf;
}
inline void append(std::string& out, float v) { append(out, static_cast<double>(v)); }

template <typename T>
inline void append(std::string& out, const std::vector<T>& v) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++ i) {
        if (i) out += ", ";
        append(out, v[i]);
    }
    out += ']';
}

template <typename... Args>
inline std::string cat(const Args&... args) {
    std::string out;
    (append(out, args), ...);
    return out;
}

inline std::string hex64(unsigned long long v) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", v);
    return buf;
}

inline bool starts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() and s.substr(0, prefix.size()) == prefix;
}

inline std::string trim(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e and (s[b] == ' ' or s[b] == '\n' or s[b] == '\t' or s[b] == '\r')) ++ b;
    while (e > b and (s[e - 1] == ' ' or s[e - 1] == '\n' or s[e - 1] == '\t' or s[e - 1] == '\r')) -- e;
    return std::string(s.substr(b, e - b));
}

} // namespace deep_gemm
