"""Old name of :mod:`pyspec.measure.classify`, kept so that existing code keeps working.

``pyspec.classify`` is the very module object of the new place (an alias in
``sys.modules``, not a copy).
"""

import sys

import pyspec.measure.classify as _new

sys.modules[__name__] = _new
