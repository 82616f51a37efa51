"""asv benchmarks for pyspec (run from bench/: asv run --python=same --quick)."""

import pyspec

pyspec.show_config()
