"""Do hashers fitted on a SpectrumStore and on the same spectra as an array agree?

Ingests the shared real LAMOST spectra into a temporary store, fits each
hasher once from the store and once from ``np.asarray(store.flux)`` with the
same seed, and prints the fraction of equal code bits over every spectrum
(1.0 = identical codes). Runs on any pyspec version (packed codes come from
``encode`` where it exists, else from ``transform``)::

    python bench/store_array_fit.py [--data ../shared/data/lamost] [--n-bits 64]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import pyspec
from pyspec._bits import unpack_bits
from pyspec.ingest import ingest


def _codes(model, X: np.ndarray) -> np.ndarray:
    packed = model.encode(X) if hasattr(model, "encode") else model.transform(X)
    return unpack_bits(packed, model.n_bits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).parents[1] / "../shared/data/lamost"))
    parser.add_argument("--n-bits", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ingest([args.data], Path(tmp) / "store", progress=False)
        store = pyspec.SpectrumStore.open(Path(tmp) / "store")
        X = np.asarray(store.flux, dtype=np.float32)
        print(f"pyspec {pyspec.__version__}: {X.shape[0]} spectra x {X.shape[1]} pixels, "
              f"{args.n_bits} bits")
        print("| hasher | equal bits, store fit vs array fit |")
        print("|---|---|")
        for cls in (pyspec.ITQHasher, pyspec.PILHasher, pyspec.LSHHasher):
            a = cls(n_bits=args.n_bits, random_state=0).fit(X)
            b = cls(n_bits=args.n_bits, random_state=0).fit(store)
            print(f"| {cls.__name__} | {np.mean(_codes(a, X) == _codes(b, X)):.4f} |")


if __name__ == "__main__":
    main()
