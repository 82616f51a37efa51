"""Type stub for the private compiled module ``pyspec._core`` (see csrc/bindings.cpp).

Users call the public wrappers in :mod:`pyspec`; each family keeps its own
section below, matching its ``csrc/bind_<family>.cpp``.
"""

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
