"""pyspec: fast similarity search for astronomical spectra.

Public names are imported lazily so that ``import pyspec`` stays quick and a
command such as ``pyspec info`` does not pay for astropy or numba.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from pyspec import _numba_cache  # noqa: F401  (first: sets numba's cache place before it loads)

try:
    __version__ = version("pyspec-search")  # the distribution name (import name: pyspec)
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

# public name -> module that defines it
_EXPORTS = {
    "show_config": "pyspec._config",
    "simd_level": "pyspec._config",
    "available_simd_levels": "pyspec._config",
    "PyspecError": "pyspec.errors",
    "FitsFormatError": "pyspec.errors",
    "IndexFormatError": "pyspec.errors",
    "NotFittedError": "pyspec.errors",
    "SpectrumCoverageError": "pyspec.errors",
    "SearchResult": "pyspec.index._result",
    "HammingIndex": "pyspec.index.hamming",
    "PQIndex": "pyspec.index.pq",
    "GraphIndex": "pyspec.index.graph",
    "IVFHammingIndex": "pyspec.index.ivf",
    "IVFPQIndex": "pyspec.index.ivfpq",
    "Spectrum": "pyspec.io",
    "SpectrumBatch": "pyspec.io",
    "read_spectrum": "pyspec.io",
    "read_spectra": "pyspec.io",
    "WavelengthGrid": "pyspec.preprocess",
    "SpectrumStore": "pyspec.store",
    "ProductQuantizer": "pyspec.models.pq",
    "PILHasher": "pyspec.models.pil",
    "LSHHasher": "pyspec.models.lsh",
    "ITQHasher": "pyspec.models.itq",
    "Engine": "pyspec.engine",
    "knn_graph": "pyspec.knn_graph",
    "LabelPropagation": "pyspec.semi_supervised",
    "LabelSpreading": "pyspec.semi_supervised",
    "ActiveLearner": "pyspec.active",
}
_SUBMODULES = {"io", "preprocess", "simulate", "lines", "indices", "classify", "measure", "models",
               "index", "catalogue"}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"pyspec.{name}")
    raise AttributeError(f"module 'pyspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
