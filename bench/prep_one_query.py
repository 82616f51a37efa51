"""CPU time of preparing one query spectrum with the default ("similarity") recipe.

Usage: ``python bench/prep_one_query.py LABEL`` (prints the p50 CPU time of
``Preprocessor.apply`` on one LAMOST DR10 file of the shipped sample, over
1000 calls after 20 warm-up calls). Run it alternately with two interpreters
(e.g. the main branch's and this one's) for an interleaved A/B comparison.
"""

import sys
import time

import numpy as np

from pyspec.data import SAMPLE_DIR
from pyspec.io import read_spectrum
from pyspec.preprocess import Preprocessor

s = read_spectrum(SAMPLE_DIR / "spec-57278-EG224429N215706B01_sp01-001.fits.gz")
p = Preprocessor.preset("similarity")
for _ in range(20):
    p.apply(s)
t = []
for _ in range(1000):
    c = time.process_time()
    p.apply(s)
    t.append(time.process_time() - c)
print(sys.argv[1] if len(sys.argv) > 1 else "pyspec", "p50 CPU ms %.3f" % (1e3 * np.median(t)))
