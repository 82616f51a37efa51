"""Type stub for the private compiled module ``pyspec._core`` (see csrc/bindings.cpp).

Users call the public wrappers in :mod:`pyspec`; each family keeps its own
section below, matching its ``csrc/bind_<family>.cpp``.
"""

from typing import Any, overload

import numpy as np
import numpy.typing as npt

# --- config (csrc/bindings.cpp) ---
__version__: str
compiler: str
openmp: bool

def max_threads() -> int: ...
def compiled_simd_level() -> str: ...
def detected_simd_level() -> str: ...
def selected_simd_level() -> str: ...
def hamming_simd_level() -> str: ...
def set_simd_level(level: str) -> None: ...

# --- hamming (csrc/bind_hamming.cpp) ---
# Array arguments are non-converting: exactly uint64 / int64, C-contiguous,
# otherwise TypeError. Wrappers: pyspec.index.hamming.

def hamming_knn(
    queries: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    ids: npt.NDArray[np.int64],
    k: int,
    pad_distance: int,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
def hamming_range(
    queries: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    ids: npt.NDArray[np.int64],
    radius: int,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
def hamming_distances(
    queries: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    num_threads: int = 0,
) -> npt.NDArray[np.int32]: ...

# Multi-index hashing (csrc/mih.hpp): widths int32 (m,), offsets uint32
# (sum(2**widths + 1),), rows uint32 (m, n_codes); bit_order int32
# (sum(widths),) distinct bits forming the substrings (None: 0, 1, 2, ...);
# work int64 (n_queries,), negative (-work - 1) for queries answered by the
# scan fallback.
def mih_build(
    codes: npt.NDArray[np.uint64],
    widths: npt.NDArray[np.int32],
    num_threads: int = 0,
    bit_order: npt.NDArray[np.int32] | None = None,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]: ...
def mih_check_tables(
    widths: npt.NDArray[np.int32],
    n_codes: int,
    offsets: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.uint32],
) -> bool: ...
def mih_knn(
    queries: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    ids: npt.NDArray[np.int64],
    widths: npt.NDArray[np.int32],
    offsets: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.uint32],
    k: int,
    pad_distance: int,
    max_work: int = 0,
    num_threads: int = 0,
    bit_order: npt.NDArray[np.int32] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...
def mih_range(
    queries: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    ids: npt.NDArray[np.int64],
    widths: npt.NDArray[np.int32],
    offsets: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.uint32],
    radius: int,
    max_work: int = 0,
    num_threads: int = 0,
    bit_order: npt.NDArray[np.int32] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32],
           npt.NDArray[np.int64]]: ...

# --- inverted file (csrc/bind_ivf.cpp) ---
# codes grouped by list (CSR offsets int64 (n_lists + 1,)); probes int64
# (n_queries, n_probe) list numbers, -1 skipped. Wrapper: pyspec.IVFHammingIndex.
def ivf_hamming_knn(
    queries: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    ids: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    probes: npt.NDArray[np.int64],
    k: int,
    pad_distance: int,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
def ivf_hamming_knn_exact(
    queries: npt.NDArray[np.uint64],
    centroids: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    ids: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    radii: npt.NDArray[np.int32],
    ring_base: npt.NDArray[np.int64],
    ring_rel: npt.NDArray[np.uint32],
    n_bits: int,
    k: int,
    pad_distance: int,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...

# --- ivfpq (csrc/bind_ivfpq.cpp) ---
def ivfpq_search(
    tables: npt.NDArray[np.float32],
    codes: npt.NDArray[np.uint8] | npt.NDArray[np.uint16],
    ids: npt.NDArray[np.int64],
    code_terms: npt.NDArray[np.float32] | None,
    offsets: npt.NDArray[np.int64],
    probes: npt.NDArray[np.int64],
    probe_terms: npt.NDArray[np.float32] | None,
    k: int,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...

# --- linalg (csrc/bind_linalg.cpp) ---
gram_row_block: int

def linalg_backend() -> str: ...
def gram_accumulate(
    H: npt.NDArray[np.float32],
    X: npt.NDArray[np.float32] | None = None,
    G: npt.NDArray[np.float64] = ...,
    C: npt.NDArray[np.float64] | None = None,
    num_threads: int = 0,
) -> None: ...
def dense_forward(
    X: npt.NDArray[np.float32],
    W: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32] | None = None,
    activation: int = 0,
    num_threads: int = 0,
) -> npt.NDArray[np.float32]: ...
def ridge_solve_batched(
    Gs: list[npt.NDArray[np.float64]],
    Cs: list[npt.NDArray[np.float64]],
    lambdas: npt.NDArray[np.float64],
    cond_limit: float,
    rcond: float,
    num_threads: int = 0,
) -> tuple[list[npt.NDArray[np.float64]], npt.NDArray[np.int32], npt.NDArray[np.int64],
           npt.NDArray[np.float64]]: ...
def sym_eig_jacobi(
    A: npt.NDArray[np.float64], num_threads: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...


# ---- product quantisation (csrc/bind_pq.cpp; wrappers: pyspec.models.pq, pyspec.index.pq) ----
# Codebook layout arguments (ct, cnorm, bounds, n_centroids): ct and cnorm
# come from pq_layout (ProductQuantizer._set_codebook); see csrc/pq.hpp.


_F32 = npt.NDArray[np.float32]
_I64 = npt.NDArray[np.int64]

@overload
def pq_encode(X: _F32, ct: _F32, cnorm: _F32, bounds: _I64, n_centroids: int,
              with_best: bool = False, num_threads: int = 0) -> npt.NDArray[np.uint8]: ...
@overload
def pq_encode(X: _F32, ct: _F32, cnorm: _F32, bounds: _I64, n_centroids: int,
              with_best: bool = True, num_threads: int = 0
              ) -> tuple[npt.NDArray[np.uint8], _F32]: ...
def pq_encode16(X: _F32, ct: _F32, cnorm: _F32, bounds: _I64, n_centroids: int,
                with_best: bool = False, num_threads: int = 0
                ) -> npt.NDArray[np.uint16] | tuple[npt.NDArray[np.uint16], _F32]: ...
def pq_tables(queries: _F32, ct: _F32, cnorm: _F32, bounds: _I64, n_centroids: int,
              num_threads: int = 0) -> _F32: ...
_Codes = npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
# (cq int8 (Kp*D,), bmean (D,), bscale (M,), berr (M*Kp,), rows (K, D)): models.pq.int8_bound_copy
_BoundCopy = tuple[npt.NDArray[np.int8], _F32, _F32, _F32, _F32]

def pq_layout(codebook: _F32, bounds: _I64) -> tuple[_F32, _F32]: ...
def pq_bound_copy(codebook: _F32, bounds: _I64) -> _BoundCopy | None: ...
def pq_bound_tables(queries: _F32, ct: _F32, cnorm: _F32, bounds: _I64, n_centroids: int,
                    bound_copy: _BoundCopy, num_threads: int = 0) -> tuple[_F32, _F32]: ...
def pq_bound_copy_pays(padded_centroids: int, n_features: int) -> bool: ...
def pq_search(queries: _F32, ct: _F32, cnorm: _F32, bounds: _I64, n_centroids: int,
              codes: _Codes, ids: _I64, k: int, num_threads: int = 0,
              scan_codes: _Codes | None = None,
              bound_copy: _BoundCopy | None = None) -> tuple[_I64, _F32]: ...
def pq_search_tables(tables: _F32, codes: _Codes, ids: _I64, k: int, num_threads: int = 0,
                     scan_codes: _Codes | None = None) -> tuple[_I64, _F32]: ...
def pq_scan_layout(codes: _Codes, num_threads: int = 0) -> _Codes: ...
def pq_scan_layout_pays(n_segments: int, n_centroids: int) -> bool: ...
def pq_accumulate(X: _F32, codes: npt.NDArray[np.uint8] | npt.NDArray[np.uint16],
                  bounds: _I64, n_centroids: int, num_threads: int = 0
                  ) -> tuple[npt.NDArray[np.float64], _I64]: ...
def pq_kmeanspp(X: _F32, bounds: _I64, n_centroids: int, seeds: npt.NDArray[np.uint64],
                num_threads: int = 0) -> _F32: ...
# 0 interleaved, 1 gather, -1 the static rule (PYSPEC_PQ_SCAN, else interleaved)
def pq_set_scan_variant(variant: int) -> None: ...
def pq_scan_variant() -> int: ...
# 4-bit fast scan (csrc/pq_fastscan.hpp)
def pq_fastscan_pack(codes: npt.NDArray[np.uint8], num_threads: int = 0
                     ) -> npt.NDArray[np.uint8]: ...
def pq_fastscan_unpack(packed: npt.NDArray[np.uint8], n: int, n_segments: int
                       ) -> npt.NDArray[np.uint8]: ...
def pq_fastscan_levels(n_segments: int, group: int = 1) -> int: ...
def pq_fastscan_quantise(tables: _F32, group: int = 1, kth_bound: _F32 | None = None
                         ) -> tuple[npt.NDArray[np.uint8], _F32, _F32, npt.NDArray[np.int32],
                                    npt.NDArray[np.uint16]]: ...
def pq_fastscan_sums(packed: npt.NDArray[np.uint8], n: int, q: npt.NDArray[np.uint8],
                     group: int = 1, saturate: bool = False, num_threads: int = 0
                     ) -> npt.NDArray[np.uint16]: ...
def pq_fastscan_search(tables: _F32, codes: npt.NDArray[np.uint8], packed: npt.NDArray[np.uint8],
                       ids: _I64, k: int, num_threads: int = 0, group: int = 0,
                       return_candidates: bool = False) -> tuple[Any, ...]: ...
