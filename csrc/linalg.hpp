// linalg kernel family: Gram accumulation, dense layer forward pass and
// batched regularised (ridge / pseudo-inverse) solves for PIL hashing.
//
// Why these kernels: a pseudo-inverse-learning (PIL) autoencoder layer solves
//   beta = (H^T H + lambda I)^-1 H^T X
// for hidden outputs H (n_spectra x L) and targets X (n_spectra x D). With
// millions of spectra H never fits in memory, so the caller streams chunks of
// H and X and accumulates G = H^T H and C = H^T X (gram_accumulate), then
// solves the small L x L systems (ridge_solve_batched), several at once.
//
// Matrix products: measured choice (bench/RESULTS.md, "ML-PIL hashing"). A
// hand-written blocked kernel at the portable baseline reached 7 GFLOP/s
// (GEMM-equivalent, 20,000 x 512 Gram, busy 2-core machine) against 33 for
// OpenBLAS in the same conditions, far from the 1.3x-of-BLAS target. So when
// the build finds the BLAS that SciPy ships (PyPI package scipy-openblas32,
// symbols prefixed "scipy_"), every product is an sgemm call on a fixed
// output tile: OpenMP threads (num_threads clause) take tiles, each tile is
// one single-threaded sgemm (OpenBLAS's own thread count is set to 1 once:
// the library is pyspec's private copy). OpenBLAS picks its kernels at run time
// (DYNAMIC_ARCH), so the module still runs on plain x86-64. Without the
// package (PYSPEC_BLAS=OFF or not installed) the same tiles use the plain
// loops in linalg.cpp; linalg_backend() says which is compiled in.
//
// Determinism: OpenBLAS's own threading gave results that differ in the last
// bits between thread counts (measured on H^T X), so it is never used: tiles
// are fixed by the problem size, never by the thread count, and each output
// entry is computed by one single-threaded call; results are bitwise
// identical for every num_threads (tested).
//
// Numerics: products run in float32 over row blocks of kGramRowBlock rows and
// are added into float64 accumulators, so the accumulation error grows with
// the block size, not with the total number of spectra: relative error of an
// entry is about 1e-6 of the row norms' product (tests use 1e-5). The
// solves are float64 throughout.
#pragma once

#include <cstdint>
#include <vector>

#include "common.hpp"

namespace pyspec {

// Rows of H multiplied in float32 before being added to the float64 sums.
constexpr index_t kGramRowBlock = 4096;

// Human-readable name of the matrix-product backend, e.g.
// "scipy-openblas32 (OpenBLAS 0.3.x ...)" or "builtin (blocked, OpenMP)".
const char* linalg_backend();

// G += H^T H and, when X != nullptr, C += H^T X.
//   H : float32 (n, L) row-major (hidden outputs of one chunk of spectra)
//   X : float32 (n, D) row-major, or nullptr (then C and D are ignored)
//   G : float64 (L, L) row-major, both triangles updated (stays symmetric)
//   C : float64 (L, D) row-major
// Threading: num_threads (0 = OpenMP default) for the products; the float64
// additions are cheap (L*L per kGramRowBlock rows). n may be 0 (no-op).
void gram_accumulate(const float* H, index_t n, index_t L, const float* X, index_t D,
                     double* G, double* C, int num_threads);

// Activation codes shared with the Python wrapper (pyspec.linalg).
enum class Activation : int { kIdentity = 0, kSigmoid = 1, kTanh = 2, kRelu = 3 };

// out = g(X W + b): one dense layer for a chunk of spectra.
//   X : float32 (n, d) row-major; W : float32 (d, p) row-major;
//   b : float32 (p,) or nullptr (zero bias); out : float32 (n, p) row-major.
// sigmoid(z) = 1 / (1 + exp(-z)) evaluated in float32 with std::exp, so the
// value is the same at every thread count. Threading as gram_accumulate.
void dense_forward(const float* X, index_t n, index_t d, const float* W, index_t p,
                   const float* b, Activation activation, float* out, int num_threads);

// One regularised system (G + lambda I) beta = C and how it was solved.
struct RidgeSystem {
  const double* G = nullptr;  // float64 (L, L) symmetric, row-major (read only)
  const double* C = nullptr;  // float64 (L, D) row-major (read only)
  double* beta = nullptr;     // float64 (L, D) row-major (output)
  index_t L = 0;
  index_t D = 0;
  double lambda = 0.0;
  // Outputs:
  int method = 0;        // 0 = Cholesky, 1 = eigen-decomposition fallback
  index_t rank = 0;      // L for Cholesky; eigenvalues kept for the fallback
  double cond = 0.0;     // condition estimate of G + lambda I (see below)
};

// Solves every system in `systems` (sizes may differ between systems).
//
// Method: Cholesky factorisation of A = G + lambda I (LAPACK dpotrf when the
// BLAS is compiled in, else column by column with the rows below the diagonal
// in parallel) and two triangular solves per column block of C (dtrsm, or
// plain loops), the blocks spread over threads. The estimate cond = (max_i l_ii / min_i l_ii)^2 is a lower
// bound of cond_2(A). If the factorisation meets a non-positive pivot
// (indefinite or singular A) or cond > cond_limit, the system is solved
// again by a symmetric eigen-decomposition A = V diag(w) V^T (parallel
// cyclic Jacobi, round-robin pair ordering, written here) and
//   beta = sum_{w_k > rcond * max|w|} v_k v_k^T C / w_k,
// the truncated pseudo-inverse solution (minimum-norm least squares for a
// singular A); `rank` counts the kept eigenvalues, `cond` is then
// max|w| / min kept w.
//
// Accuracy: Cholesky results satisfy ||A beta - C|| <= c * L * eps * ||A||
// ||beta|| (backward stable); eigen results agree with numpy.linalg.pinv(A) @ C
// to about cond * 1e-14 relative (tests scale tolerances by cond).
// Threading: systems in parallel when there are at least as many systems as
// threads, otherwise one system at a time with threads inside it. Results do
// not depend on num_threads. Throws std::invalid_argument for bad sizes or
// null pointers (checked before any parallel region).
void ridge_solve_batched(std::vector<RidgeSystem>& systems, double cond_limit, double rcond,
                         int num_threads);

// Symmetric eigen-decomposition by parallel cyclic Jacobi (exposed for tests
// and the fallback above).
//   A : float64 (L, L) symmetric, row-major (read only)
//   w : float64 (L,) eigenvalues, ascending
//   V : float64 (L, L) row-major, column k is the unit eigenvector of w[k]
// Converges when a full sweep applies no rotation (|a_pq| <= 1e-15 *
// sqrt(|a_pp a_qq|)); at most kJacobiMaxSweeps sweeps. Eigenvalues agree with
// LAPACK to ~1e-14 * ||A||. Threading inside the rounds of disjoint rotations;
// results do not depend on num_threads.
constexpr int kJacobiMaxSweeps = 60;
void sym_eig_jacobi(const double* A, index_t L, double* w, double* V, int num_threads);

}  // namespace pyspec
