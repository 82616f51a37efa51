"""Old name of :mod:`pyspec.measure.indices`, kept so that existing code keeps working.

``pyspec.indices`` is the very module object of the new place (an alias in
``sys.modules``, not a copy).
"""

import sys

import pyspec.measure.indices as _new

sys.modules[__name__] = _new
