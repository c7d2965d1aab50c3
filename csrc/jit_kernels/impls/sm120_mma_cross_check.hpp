#pragma once

// The one-time cross-check of docs/HARDWARE.md §4, shared by every kernel family. An MMA form that only sm_120a/sm_121a
// can execute (block-scaled FP8 at full rate, native FP4) is used only after it has agreed with its portable twin
// on a small random input, once per (family, configuration, device) and process. On disagreement: one warning,
// and the twin from then on. A family supplies only `run(inject_fault) -> MmaCheckResult`.
//
// `DG_SM120_MMA_CHECK`: unset or `1` = check each unvalidated candidate once; `0` = never check; `force` = also
// check when the candidate is the portable form itself (so the H100 exercises the mechanism); `force-fail` = like
// `force`, with the candidate's output perturbed (so the H100 exercises the fallback).

#include <ATen/cuda/CUDAContext.h>
#include <pybind11/pybind11.h>
#include <torch/python.h>

#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "../../jit/device_runtime.hpp"
#include "../../utils/exception.hpp"
#include "../../utils/system.hpp"

namespace deep_gemm {

// Set to true (and record it in docs/STATUS.md) once a form has been checked on a real sm_120/sm_121 GPU
constexpr bool kFp8BlockScaledValidatedOnHardware = false;
constexpr bool kFp4NativeValidatedOnHardware = false;

enum class MmaCheckMode { kDefault, kOff, kForce, kForceFail };

inline MmaCheckMode mma_check_mode() {
    const auto& v = DgKnobs::get().mma_check;
    if (v.empty() or v == "1") return MmaCheckMode::kDefault;
    if (v == "0") return MmaCheckMode::kOff;
    if (v == "force") return MmaCheckMode::kForce;
    if (v == "force-fail") return MmaCheckMode::kForceFail;
    DG_CHECK(false, "environment variable DG_SM120_MMA_CHECK must be unset, 0, 1, 'force' or 'force-fail'; got '", v, "'");
    return MmaCheckMode::kDefault;
}

// The MMA form a config launches with when it follows from the config and DG_SM120_MMA_CHECK alone (the portable form,
// a form validated on hardware, or the check off: nothing to run or look up), else nothing. Warm-path plans settle
// the form with it once per `DG_*` generation; `MmaCrossCheck::resolve` decides the rest.
inline std::optional<bool> settled_mma_form(bool candidate, bool validated) {
    const auto mode = mma_check_mode();
    const bool forced = mode == MmaCheckMode::kForce or mode == MmaCheckMode::kForceFail;
    if (not forced and (mode == MmaCheckMode::kOff or not candidate or validated))
        return candidate;
    return std::nullopt;
}

struct MmaCheckResult {
    bool passed = false;
    double max_abs_diff = 0;
};

struct MmaCheckRecord {
    std::string key;
    bool passed;
    double max_abs_diff;
};

class MmaCrossCheck {
    std::mutex mutex;
    std::map<std::string, bool> results;
    std::vector<MmaCheckRecord> records;
    std::atomic<uint64_t> resets{0};

public:
    static MmaCrossCheck& get() {
        static MmaCrossCheck instance;
        return instance;
    }

    std::vector<MmaCheckRecord> log() {
        std::lock_guard<std::mutex> lock(mutex);
        return records;
    }

    void reset() {
        std::lock_guard<std::mutex> lock(mutex);
        results.clear();
        records.clear();
        resets.fetch_add(1);
    }

    // Bumped by every `reset`: callers that cache a resolved form keep it only while this is unchanged
    uint64_t epoch() const { return resets.load(std::memory_order_relaxed); }

    // Whether to launch the candidate form. `candidate` says whether the config asks for the sm_120-only form;
    // `validated` whether that form has been checked on real hardware (then no check runs unless forced).
    template <typename Run>
    bool resolve(const std::string& family, const std::string& config, bool candidate, bool validated, int device,
                 cudaStream_t stream, Run&& run) {
        const auto mode = mma_check_mode();
        const bool forced = mode == MmaCheckMode::kForce or mode == MmaCheckMode::kForceFail;
        if (not forced and (mode == MmaCheckMode::kOff or not candidate or validated))
            return candidate;
        const auto key = cat(family, ": ", config, " on device ", device, forced ? (mode == MmaCheckMode::kForce ?
                             " (forced)" : " (forced fault)") : "");
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (const auto it = results.find(key); it != results.end())
                return it->second and candidate;
        }
        // The check synchronizes, so never inside a CUDA-graph capture: use the twin for this call, decide later
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        DG_RUNTIME_CHECK(cudaStreamIsCapturing(stream, &capture) == cudaSuccess, family, ": cudaStreamIsCapturing failed");
        if (capture != cudaStreamCaptureStatusNone)
            return false;
        const MmaCheckResult r = run(mode == MmaCheckMode::kForceFail);
        {
            std::lock_guard<std::mutex> lock(mutex);
            results[key] = r.passed;
            records.push_back({key, r.passed, r.max_abs_diff});
        }
        if (not r.passed) {
            const auto msg = cat("deep_gemm: ", family, ": the sm_120 MMA form of ", config, " disagrees with its "
                                 "portable twin (max abs diff ", r.max_abs_diff, ") on ",
                                 jit::DeviceRuntime::device_description(device),
                                 "; using the portable form for this configuration from now on");
            if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0)
                throw pybind11::error_already_set();
        }
        return r.passed and candidate;
    }
};

// A warm-path plan's memory of the form `MmaCrossCheck::resolve` decided for its config: valid while no reset happened
// since (`epoch`), so a warm call of a config whose form is not settled by the plan (an sm_120-only form not yet
// validated on hardware) builds no key string. A deferral (during graph capture) is not a decision: not remembered.
struct ResolvedMmaForm {
    uint64_t epoch = ~uint64_t(0);
    bool form = false;

    std::optional<bool> lookup() const {
        return epoch == MmaCrossCheck::get().epoch() ? std::optional<bool>(form) : std::nullopt;
    }

    // `resolve()` (a call of `MmaCrossCheck::resolve`), and `store(ResolvedMmaForm)` to remember its decision in the
    // plan (found again: `resolve` may run Python code that replaces this thread's plans)
    template <typename Resolve, typename Store>
    static bool decide(const ResolvedMmaForm& memo, cudaStream_t stream, const Resolve& resolve, const Store& store) {
        if (const auto form = memo.lookup())
            return *form;
        const uint64_t epoch = MmaCrossCheck::get().epoch();
        const bool form = resolve();
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing(stream, &capture) == cudaSuccess and capture == cudaStreamCaptureStatusNone)
            store(ResolvedMmaForm{epoch, form});
        return form;
    }
};

// Compare the candidate's output with the twin's: both must agree to float rounding (`rel_tol` of the magnitude)
inline MmaCheckResult compare_mma_outputs(torch::Tensor candidate, const torch::Tensor& twin, bool inject_fault,
                                          double rel_tol = 1e-6) {
    const double magnitude = twin.to(torch::kDouble).abs().max().item<double>();
    if (inject_fault) {
        // NOTES: a perturbation well above the tolerance at any magnitude (a fixed +1 hid below it for FP4 inputs
        // whose logits reach 1e8)
        candidate = candidate.clone();
        const double bump = std::max(1.0, 1e-3 * magnitude);
        candidate.view(-1).index_put_({0}, candidate.view(-1).index({0}) + bump);
    }
    const double max_abs_diff = (candidate.to(torch::kDouble) - twin.to(torch::kDouble)).abs().max().item<double>();
    return {std::isfinite(max_abs_diff) and max_abs_diff <= rel_tol * std::max(magnitude, 1e-30), max_abs_diff};
}

inline void register_mma_cross_check_apis(pybind11::module_& m) {
    m.def("_mma_cross_check_log", []() {
        pybind11::list out;
        for (const auto& r: MmaCrossCheck::get().log())
            out.append(pybind11::make_tuple(r.key, r.passed, r.max_abs_diff));
        return out;
    });
    m.def("_mma_cross_check_reset", []() { MmaCrossCheck::get().reset(); });
}

} // namespace deep_gemm
