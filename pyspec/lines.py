"""Old name of :mod:`pyspec.measure.lines`, kept so that existing code keeps working.

``pyspec.lines`` is the very module object of the new place (an alias in
``sys.modules``, not a copy), and so is each ``pyspec.lines.<submodule>``.
"""

import importlib
import pkgutil
import sys

import pyspec.measure.lines as _new

for _info in pkgutil.iter_modules(_new.__path__):
    sys.modules[f"{__name__}.{_info.name}"] = importlib.import_module(
        f"{_new.__name__}.{_info.name}")

sys.modules[__name__] = _new
