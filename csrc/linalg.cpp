// Gram accumulation, dense forward pass and batched ridge solves.
// See linalg.hpp for shapes, threading and tolerances.
#include "linalg.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "parallel.hpp"

#ifdef PYSPEC_HAVE_BLAS
#include <cblas.h>
#include <lapacke.h>
#endif

namespace pyspec {

namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr double kParallelMinWork = 1 << 18;
// Column block of the right-hand side handled by one thread in the
// triangular solves: 256 doubles per row keeps a block of a 512-row system
// (1 MiB) in L2.
constexpr index_t kSolveColBlock = 256;
// Output rows per product tile: large enough for BLAS to run near peak
// (K = kGramRowBlock deep), small enough to balance 2 to 16 threads.
constexpr index_t kTileRows = 128;
// Spectra per tile of the dense forward pass.
constexpr index_t kForwardRows = 256;
// Narrowest column slice per thread when a forward pass has too few rows to
// share out (keeps each slice a reasonable GEMM).
constexpr index_t kForwardMinCols = 64;

#ifdef PYSPEC_HAVE_BLAS
// OpenBLAS runs single-threaded inside our tiles (see linalg.hpp). The
// library is pyspec's own copy (NumPy and SciPy bundle theirs), so setting
// its process-wide count once, and never restoring it, affects nobody else
// and cannot race between concurrent calls.
void blas_single_threaded() {
  static const bool done = [] {
    scipy_openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}
#endif

// out[m x p] = A^T B for A with k rows of which columns [0, m) are used (row
// stride lda) and B (k x p, row stride ldb); out has row stride ldo. One
// thread; BLAS when compiled in, else a row-by-row float32 loop whose
// summation order is fixed.
void gemm_tn(const float* A, index_t lda, index_t m, const float* B, index_t ldb, index_t p,
             index_t k, float* out, index_t ldo) {
#ifdef PYSPEC_HAVE_BLAS
  scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(m), blasint(p), blasint(k),
                    1.0f, A, blasint(lda), B, blasint(ldb), 0.0f, out, blasint(ldo));
#else
  for (index_t i = 0; i < m; ++i) std::fill(out + i * ldo, out + i * ldo + p, 0.0f);
  for (index_t r = 0; r < k; ++r) {
    const float* a = A + r * lda;
    const float* b = B + r * ldb;
    for (index_t i = 0; i < m; ++i) {
      const float ai = a[i];
      float* o = out + i * ldo;
      for (index_t j = 0; j < p; ++j) o[j] += ai * b[j];
    }
  }
#endif
}

// out[m x p] = A (m x k, stride lda) B (k x p, stride ldb), one thread.
void gemm_nn(const float* A, index_t lda, index_t m, const float* B, index_t ldb, index_t p,
             index_t k, float* out, index_t ldo) {
#ifdef PYSPEC_HAVE_BLAS
  if (m == 1) {
    // One row (a query spectrum): out = B^T a, OpenBLAS's GEMV streams B
    // once with less set-up than a 1-row GEMM.
    scipy_cblas_sgemv(CblasRowMajor, CblasTrans, blasint(k), blasint(p), 1.0f, B, blasint(ldb),
                      A, 1, 0.0f, out, 1);
    return;
  }
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(p), blasint(k),
                    1.0f, A, blasint(lda), B, blasint(ldb), 0.0f, out, blasint(ldo));
#else
  for (index_t i = 0; i < m; ++i) {
    float* o = out + i * ldo;
    std::fill(o, o + p, 0.0f);
    for (index_t r = 0; r < k; ++r) {
      const float a = A[i * lda + r];
      const float* b = B + r * ldb;
      for (index_t j = 0; j < p; ++j) o[j] += a * b[j];
    }
  }
#endif
}

void check(bool ok, const char* msg) {
  if (!ok) throw std::invalid_argument(msg);
}

}  // namespace

const char* linalg_backend() {
#ifdef PYSPEC_HAVE_BLAS
  static const std::string name = std::string("scipy-openblas32 (") + scipy_openblas_get_config() + ")";
  return name.c_str();
#else
  return "builtin (blocked, OpenMP)";
#endif
}

void gram_accumulate(const float* H, index_t n, index_t L, const float* X, index_t D, double* G,
                     double* C, int num_threads) {
  check(n >= 0 && L >= 1 && D >= 0, "gram_accumulate: bad sizes");
  check(H != nullptr || n == 0, "gram_accumulate: H is null");
  check(G != nullptr, "gram_accumulate: G is null");
  check(X == nullptr || C != nullptr, "gram_accumulate: C is null but X is given");
  if (n == 0) return;
  [[maybe_unused]] const int nt = resolve_threads(num_threads);
  const bool with_c = X != nullptr && D > 0;
  std::vector<float> tg(size_t(L) * L);
  std::vector<float> tc(with_c ? size_t(L) * D : 0);
#ifdef PYSPEC_HAVE_BLAS
  blas_single_threaded();
#endif
  for (index_t r0 = 0; r0 < n; r0 += kGramRowBlock) {
    const index_t nb = std::min(kGramRowBlock, n - r0);
    const float* Hb = H + r0 * L;
    // Fixed output tiles of kTileRows rows, each one single-threaded product
    // (see the header: results must not depend on the thread count, and
    // OpenBLAS's own threading splits work differently per thread count).
    // G: only the tiles on and below the diagonal (columns 0 .. row end).
    const index_t n_tiles = (L + kTileRows - 1) / kTileRows;
    [[maybe_unused]] const double work = double(nb) * L * (L + D);
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (work > kParallelMinWork))
    for (index_t t = 0; t < 2 * n_tiles; ++t) {
      const bool is_c = t >= n_tiles;
      if (is_c && !with_c) continue;
      const index_t i0 = (t % n_tiles) * kTileRows;
      const index_t rows = std::min(kTileRows, L - i0);
      if (!is_c)
        gemm_tn(Hb + i0, L, rows, Hb, L, i0 + rows, nb, tg.data() + i0 * L, L);
      else
        gemm_tn(Hb + i0, L, rows, X + r0 * D, D, D, nb, tc.data() + i0 * D, D);
    }
    // Add the float32 block products into the float64 sums; mirror G.
PYSPEC_OMP(omp parallel for schedule(static) num_threads(nt) if (double(L) * (L + D) > kParallelMinWork))
    for (index_t i = 0; i < L; ++i) {
      const float* t = tg.data() + i * L;
      double* g = G + i * L;
      for (index_t j = 0; j <= i; ++j) g[j] += double(t[j]);
      if (with_c) {
        const float* s = tc.data() + i * D;
        double* c = C + i * D;
        for (index_t j = 0; j < D; ++j) c[j] += double(s[j]);
      }
    }
  }
  // Upper triangle from the lower one (each block added only below).
PYSPEC_OMP(omp parallel for schedule(static) num_threads(nt) if (double(L) * L > kParallelMinWork))
  for (index_t i = 0; i < L; ++i)
    for (index_t j = i + 1; j < L; ++j) G[i * L + j] = G[j * L + i];
}

// Bias and activation on columns [j0, j1) of a (rows x p) row-major block.
static void finish_forward(float* out, index_t rows, index_t p, index_t j0, index_t j1,
                           const float* b, Activation activation) {
  for (index_t i = 0; i < rows; ++i) {
    float* o = out + i * p;
    if (b != nullptr)
      for (index_t j = j0; j < j1; ++j) o[j] += b[j];
    switch (activation) {
      case Activation::kSigmoid:
        for (index_t j = j0; j < j1; ++j) o[j] = 1.0f / (1.0f + std::exp(-o[j]));
        break;
      case Activation::kTanh:
        for (index_t j = j0; j < j1; ++j) o[j] = std::tanh(o[j]);
        break;
      case Activation::kRelu:
        for (index_t j = j0; j < j1; ++j) o[j] = o[j] > 0.0f ? o[j] : 0.0f;
        break;
      case Activation::kIdentity:
        break;
    }
  }
}

static index_t n_tiles_for(index_t n) { return (n + kForwardRows - 1) / kForwardRows; }

void dense_forward(const float* X, index_t n, index_t d, const float* W, index_t p, const float* b,
                   Activation activation, float* out, int num_threads) {
  check(n >= 0 && d >= 1 && p >= 1, "dense_forward: bad sizes");
  check((X != nullptr && out != nullptr) || n == 0, "dense_forward: null array");
  check(W != nullptr, "dense_forward: W is null");
  const int act = int(activation);
  check(act >= 0 && act <= 3, "dense_forward: unknown activation");
  if (n == 0) return;
  [[maybe_unused]] const int nt = resolve_threads(num_threads);
#ifdef PYSPEC_HAVE_BLAS
  blas_single_threaded();
#endif
  if (n_tiles_for(n) < nt && p >= 2 * kForwardMinCols) {
    // Fewer row tiles than threads (a single query spectrum, say): split
    // the output columns instead so every thread streams its own slice of
    // W, which is what bounds a one-row product. Each column slice is a
    // single-threaded product of its own.
    const index_t n_blocks = std::min<index_t>(nt, p / kForwardMinCols);
PYSPEC_OMP(omp parallel for schedule(static) num_threads(nt) if (double(n) * d * p > kParallelMinWork))
    for (index_t blk = 0; blk < n_blocks; ++blk) {
      const index_t j0 = blk * p / n_blocks, j1 = (blk + 1) * p / n_blocks;
      gemm_nn(X, d, n, W + j0, p, j1 - j0, d, out + j0, p);
      finish_forward(out, n, p, j0, j1, b, activation);
    }
    return;
  }
  // Fixed tiles of kForwardRows spectra, each a single-threaded product
  // followed by bias and activation while the tile is in cache.
  const index_t n_tiles = n_tiles_for(n);
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (double(n) * d * p > kParallelMinWork))
  for (index_t t = 0; t < n_tiles; ++t) {
    const index_t i0 = t * kForwardRows;
    const index_t rows = std::min(kForwardRows, n - i0);
    gemm_nn(X + i0 * d, d, rows, W, p, p, d, out + i0 * p, p);
    finish_forward(out + i0 * p, rows, p, 0, p, b, activation);
  }
}

namespace {

// In-place lower Cholesky factor of A (L x L row-major, only the lower
// triangle is read and written). Column j: pivot, then every row below it in
// parallel, each a contiguous dot product over the first j entries
// (Cholesky-Crout ordering; the summation order is fixed, so the result does
// not depend on threads). Returns false on a non-positive pivot.
bool cholesky_lower(double* A, index_t L, [[maybe_unused]] int nt) {
#ifdef PYSPEC_HAVE_BLAS
  // LAPACK's blocked dpotrf, single-threaded (see linalg.hpp). The row-major
  // lower triangle is the column-major upper one: U^T U = A in column-major
  // is F F^T = A for the row-major lower F.
  blas_single_threaded();
  return scipy_LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', lapack_int(L), A, lapack_int(L)) == 0;
#endif
  for (index_t j = 0; j < L; ++j) {
    double* aj = A + j * L;
    double s = aj[j];
    for (index_t k = 0; k < j; ++k) s -= aj[k] * aj[k];
    if (!(s > 0.0) || !std::isfinite(s)) return false;
    const double djj = std::sqrt(s);
    aj[j] = djj;
    [[maybe_unused]] const double work = double(L - j) * j;
PYSPEC_OMP(omp parallel for schedule(static) num_threads(nt) if (work > kParallelMinWork))
    for (index_t i = j + 1; i < L; ++i) {
      double* ai = A + i * L;
      double t = ai[j];
      for (index_t k = 0; k < j; ++k) t -= ai[k] * aj[k];
      ai[j] = t / djj;
    }
  }
  return true;
}

// beta = (F F^T)^-1 C for the lower factor F: forward then backward
// substitution, row operations vectorised over a column block of C; column
// blocks are independent and spread over threads.
void cholesky_solve(const double* F, index_t L, const double* C, index_t D, double* beta,
                    [[maybe_unused]] int nt) {
  const index_t n_blocks = (D + kSolveColBlock - 1) / kSolveColBlock;
  [[maybe_unused]] const double work = double(L) * L * D;
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (work > kParallelMinWork))
  for (index_t blk = 0; blk < n_blocks; ++blk) {
    const index_t c0 = blk * kSolveColBlock;
    const index_t w = std::min(kSolveColBlock, D - c0);
#ifdef PYSPEC_HAVE_BLAS
    // Two blocked triangular solves (dtrsm) on this column block.
    for (index_t i = 0; i < L; ++i)
      std::copy(C + i * D + c0, C + i * D + c0 + w, beta + i * D + c0);
    scipy_cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit,
                      blasint(L), blasint(w), 1.0, F, blasint(L), beta + c0, blasint(D));
    scipy_cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit,
                      blasint(L), blasint(w), 1.0, F, blasint(L), beta + c0, blasint(D));
    continue;
#endif
    // Forward: F y = c.
    for (index_t i = 0; i < L; ++i) {
      double* yi = beta + i * D + c0;
      const double* ci = C + i * D + c0;
      for (index_t c = 0; c < w; ++c) yi[c] = ci[c];
      const double* fi = F + i * L;
      for (index_t k = 0; k < i; ++k) {
        const double f = fi[k];
        const double* yk = beta + k * D + c0;
        for (index_t c = 0; c < w; ++c) yi[c] -= f * yk[c];
      }
      const double inv = 1.0 / fi[i];
      for (index_t c = 0; c < w; ++c) yi[c] *= inv;
    }
    // Backward: F^T x = y.
    for (index_t i = L - 1; i >= 0; --i) {
      double* xi = beta + i * D + c0;
      for (index_t k = i + 1; k < L; ++k) {
        const double f = F[k * L + i];
        const double* xk = beta + k * D + c0;
        for (index_t c = 0; c < w; ++c) xi[c] -= f * xk[c];
      }
      const double inv = 1.0 / F[i * L + i];
      for (index_t c = 0; c < w; ++c) xi[c] *= inv;
    }
  }
}

// Rotation (c, s) that zeroes a_pq of the 2x2 symmetric block
// [[a_pp, a_pq], [a_pq, a_qq]] under J^T A J, J = [[c, s], [-s, c]]
// (the classical symmetric Schur decomposition, smaller angle chosen).
inline void jacobi_rotation(double app, double apq, double aqq, double* c, double* s) {
  const double tau = (aqq - app) / (2.0 * apq);
  const double t = tau >= 0.0 ? 1.0 / (tau + std::sqrt(1.0 + tau * tau))
                              : -1.0 / (-tau + std::sqrt(1.0 + tau * tau));
  *c = 1.0 / std::sqrt(1.0 + t * t);
  *s = t * (*c);
}

}  // namespace

void sym_eig_jacobi(const double* Ain, index_t L, double* w, double* V, int num_threads) {
  check(L >= 1 && Ain != nullptr && w != nullptr && V != nullptr, "sym_eig_jacobi: bad input");
  [[maybe_unused]] const int nt = resolve_threads(num_threads);
  std::vector<double> A(Ain, Ain + L * L);
  // Vt: row k is eigenvector k (rows are rotated, contiguous access).
  std::vector<double> Vt(size_t(L) * L, 0.0);
  for (index_t i = 0; i < L; ++i) Vt[i * L + i] = 1.0;
  // Round-robin tournament over m (even) players: every pair meets once per
  // sweep of m - 1 rounds, and the L/2 pairs of a round are disjoint, so
  // their rotations commute and run in parallel.
  const index_t m = L + (L % 2);
  const index_t half = m / 2;
  std::vector<index_t> P(half), Q(half);
  std::vector<double> cs(half), sn(half);
  std::vector<char> active(half);
  [[maybe_unused]] const bool par = double(L) * L > kParallelMinWork;
  for (int sweep = 0; sweep < kJacobiMaxSweeps; ++sweep) {
    bool rotated = false;
    for (index_t round = 0; round < m - 1; ++round) {
      auto player = [&](index_t slot) -> index_t {
        return slot == 0 ? 0 : 1 + (slot - 1 + round) % (m - 1);
      };
      bool any = false;
      for (index_t i = 0; i < half; ++i) {
        index_t p = player(i), q = player(m - 1 - i);
        if (p > q) std::swap(p, q);
        P[i] = p;
        Q[i] = q;
        active[i] = 0;
        if (q >= L) continue;  // the dummy player of an odd L
        const double apq = A[p * L + q];
        const double app = A[p * L + p], aqq = A[q * L + q];
        if (std::fabs(apq) <= 1e-15 * std::sqrt(std::fabs(app * aqq)) ||
            std::fabs(apq) < std::numeric_limits<double>::min())
          continue;
        jacobi_rotation(app, apq, aqq, &cs[i], &sn[i]);
        active[i] = 1;
        any = true;
      }
      if (!any) continue;
      rotated = true;
      // Rows p, q of A and of Vt: J^T A.
PYSPEC_OMP(omp parallel for schedule(static) num_threads(nt) if (par))
      for (index_t i = 0; i < half; ++i) {
        if (!active[i]) continue;
        const double c = cs[i], s = sn[i];
        for (double* M : {A.data(), Vt.data()}) {
          double* rp = M + P[i] * L;
          double* rq = M + Q[i] * L;
          for (index_t k = 0; k < L; ++k) {
            const double x = rp[k], y = rq[k];
            rp[k] = c * x - s * y;
            rq[k] = s * x + c * y;
          }
        }
      }
      // Columns p, q of A: (J^T A) J, row by row (contiguous rows).
PYSPEC_OMP(omp parallel for schedule(static) num_threads(nt) if (par))
      for (index_t k = 0; k < L; ++k) {
        double* row = A.data() + k * L;
        for (index_t i = 0; i < half; ++i) {
          if (!active[i]) continue;
          const double c = cs[i], s = sn[i];
          const double x = row[P[i]], y = row[Q[i]];
          row[P[i]] = c * x - s * y;
          row[Q[i]] = s * x + c * y;
        }
      }
      for (index_t i = 0; i < half; ++i)
        if (active[i]) A[P[i] * L + Q[i]] = A[Q[i] * L + P[i]] = 0.0;
    }
    if (!rotated) break;
  }
  std::vector<index_t> order(L);
  std::iota(order.begin(), order.end(), index_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](index_t a, index_t b) { return A[a * L + a] < A[b * L + b]; });
  for (index_t k = 0; k < L; ++k) {
    const index_t src = order[k];
    w[k] = A[src * L + src];
    for (index_t i = 0; i < L; ++i) V[i * L + k] = Vt[src * L + i];
  }
}

namespace {

void solve_one(RidgeSystem& s, double cond_limit, double rcond, int nt) {
  const index_t L = s.L, D = s.D;
  std::vector<double> A(size_t(L) * L);
  std::copy(s.G, s.G + L * L, A.begin());
  for (index_t i = 0; i < L; ++i) A[i * L + i] += s.lambda;
  std::vector<double> F(A);
  if (cholesky_lower(F.data(), L, nt)) {
    double dmax = 0.0, dmin = std::numeric_limits<double>::infinity();
    for (index_t i = 0; i < L; ++i) {
      dmax = std::max(dmax, F[i * L + i]);
      dmin = std::min(dmin, F[i * L + i]);
    }
    const double cond = (dmax / dmin) * (dmax / dmin);
    if (cond <= cond_limit) {
      cholesky_solve(F.data(), L, s.C, D, s.beta, nt);
      s.method = 0;
      s.rank = L;
      s.cond = cond;
      return;
    }
  }
  // Fallback: truncated eigen-decomposition (pseudo-inverse of A).
  std::vector<double> w(L), V(size_t(L) * L);
  sym_eig_jacobi(A.data(), L, w.data(), V.data(), nt);
  double wmax = 0.0;
  for (double x : w) wmax = std::max(wmax, std::fabs(x));
  const double cut = rcond * wmax;
  std::vector<double> inv(L, 0.0);
  index_t rank = 0;
  double wmin_kept = std::numeric_limits<double>::infinity();
  for (index_t k = 0; k < L; ++k)
    if (w[k] > cut && w[k] > 0.0) {
      inv[k] = 1.0 / w[k];
      ++rank;
      wmin_kept = std::min(wmin_kept, w[k]);
    }
  // T = diag(inv) V^T C, then beta = V T; parallel over column blocks.
  const index_t n_blocks = (D + kSolveColBlock - 1) / kSolveColBlock;
PYSPEC_OMP(omp parallel num_threads(nt) if (double(L) * L * D > kParallelMinWork))
  {
    std::vector<double> T(size_t(L) * kSolveColBlock);
PYSPEC_OMP(omp for schedule(dynamic, 1))
    for (index_t blk = 0; blk < n_blocks; ++blk) {
      const index_t c0 = blk * kSolveColBlock;
      const index_t wd = std::min(kSolveColBlock, D - c0);
      std::fill(T.begin(), T.end(), 0.0);
      for (index_t i = 0; i < L; ++i) {
        const double* ci = s.C + i * D + c0;
        const double* vi = V.data() + i * L;
        for (index_t k = 0; k < L; ++k) {
          if (inv[k] == 0.0) continue;
          const double v = vi[k];
          double* tk = T.data() + k * kSolveColBlock;
          for (index_t c = 0; c < wd; ++c) tk[c] += v * ci[c];
        }
      }
      for (index_t i = 0; i < L; ++i) {
        double* bi = s.beta + i * D + c0;
        std::fill(bi, bi + wd, 0.0);
        const double* vi = V.data() + i * L;
        for (index_t k = 0; k < L; ++k) {
          if (inv[k] == 0.0) continue;
          const double f = vi[k] * inv[k];
          const double* tk = T.data() + k * kSolveColBlock;
          for (index_t c = 0; c < wd; ++c) bi[c] += f * tk[c];
        }
      }
    }
  }
  s.method = 1;
  s.rank = rank;
  s.cond = rank > 0 ? wmax / wmin_kept : std::numeric_limits<double>::infinity();
}

}  // namespace

void ridge_solve_batched(std::vector<RidgeSystem>& systems, double cond_limit, double rcond,
                         int num_threads) {
  for (const auto& s : systems) {
    check(s.L >= 1 && s.D >= 0, "ridge_solve_batched: bad system size");
    check(s.G != nullptr && (s.D == 0 || (s.C != nullptr && s.beta != nullptr)),
          "ridge_solve_batched: null array");
    check(std::isfinite(s.lambda) && s.lambda >= 0.0, "ridge_solve_batched: lambda must be >= 0");
  }
  check(rcond >= 0.0 && cond_limit > 0.0, "ridge_solve_batched: bad rcond or cond_limit");
  [[maybe_unused]] const int nt = resolve_threads(num_threads);
  const index_t B = index_t(systems.size());
  if (B >= nt && nt > 1) {
    ErrorCapture errors;
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt))
    for (index_t i = 0; i < B; ++i) errors.run([&] { solve_one(systems[i], cond_limit, rcond, 1); });
    errors.rethrow();
  } else {
    for (auto& s : systems) solve_one(s, cond_limit, rcond, nt);
  }
}

}  // namespace pyspec
