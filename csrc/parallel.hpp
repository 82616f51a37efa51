// Thread-count resolution and exception capture for OpenMP regions.
//
// Every kernel takes `num_threads`: 0 means the OpenMP default (which honours
// OMP_NUM_THREADS), n >= 1 is exact. Regions use the num_threads(...) clause;
// the global omp_set_num_threads() is never called.
#pragma once

#include <exception>
#include <mutex>

#ifdef PYSPEC_HAVE_OPENMP
#include <omp.h>
#endif

// OpenMP pragmas through a macro, so a serial build (PYSPEC_OPENMP=OFF) has no
// unknown-pragma warnings: PYSPEC_OMP(omp parallel for ...).
#ifdef PYSPEC_HAVE_OPENMP
#define PYSPEC_OMP(directive) _Pragma(#directive)
#else
#define PYSPEC_OMP(directive)
#endif

namespace pyspec {

inline int resolve_threads(int requested) {
  if (requested > 0) return requested;
#ifdef PYSPEC_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef PYSPEC_HAVE_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline bool openmp_enabled() {
#ifdef PYSPEC_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

// Keeps the first exception thrown inside a parallel region so it can be
// re-thrown after the region closes (no exception may cross an OpenMP
// region boundary).
class ErrorCapture {
 public:
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace pyspec
