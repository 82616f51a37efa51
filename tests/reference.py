"""Slow, obviously-correct NumPy references for every compiled kernel.

Each kernel family appends its reference here; tests compare the fast path
against these exactly (integers) or within a stated tolerance (floats).
"""

from __future__ import annotations

import numpy as np
