"""Smoke test of bench/: every asv benchmark runs once at its smallest parameters.

Benchmark modules (``bench/benchmarks/bench_*.py``) and peers sections
(``bench/peer_sections/*.py``) are discovered at collection time, so new ones
are covered without editing this file. For each benchmark class, the first
value of every parameter is used (benchmarks list their smallest size
first); ``setup_cache`` runs once per class, then ``setup``, the method and
``teardown``. A ``setup`` raising ``NotImplementedError`` is asv's way of
skipping a case and is reported as a skip here too. Benchmarks never assert,
so this checks that they run, not what they measure.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")


def _raised_in_bench(exc: BaseException) -> bool:
    """True when ``exc`` was raised by code under bench/ (asv's way of opting a case out),
    not by pyspec called from the benchmark."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(
        BENCH_DIR)


def _import(name: str):
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module(name)


def _bench_modules() -> list[str]:
    return sorted(f"benchmarks.{p.stem}" for p in (BENCH_DIR / "benchmarks").glob("bench_*.py"))


def _cases() -> list:
    """(module, class or None, attribute) for every benchmark; import errors become cases."""
    cases = []
    for modname in _bench_modules():
        try:
            module = _import(modname)
        except Exception:  # noqa: BLE001 - the case re-imports and fails with the error
            cases.append(pytest.param(modname, None, None, id=f"{modname}:import"))
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                for attr in sorted(dir(obj)):
                    if attr.startswith(PREFIXES) and callable(getattr(obj, attr)):
                        cases.append(pytest.param(modname, name, attr,
                                                  id=f"{modname[11:]}.{name}.{attr}"))
            elif inspect.isfunction(obj) and name.startswith(PREFIXES) and (
                    obj.__module__ == module.__name__):
                cases.append(pytest.param(modname, None, name, id=f"{modname[11:]}.{name}"))
    return cases


def _first_params(cls) -> tuple:
    params = getattr(cls, "params", None)
    if params is None or (isinstance(params, (list, tuple)) and len(params) == 0):
        return ()
    # asv: a single parameter may be given as a flat list
    if not any(isinstance(p, (list, tuple)) for p in params):
        params = [params]
    return tuple(p[0] for p in params)


_CACHE: dict = {}


def _setup_cache(cls, args: tuple):
    key = (cls.__module__, cls.__qualname__)
    if key not in _CACHE:
        fn = getattr(cls, "setup_cache", None)
        _CACHE[key] = (fn(cls()) if fn is not None else None,)
    value = _CACHE[key][0]
    return args if getattr(cls, "setup_cache", None) is None else (value, *args)


def test_bench_modules_import():
    assert _bench_modules(), "no bench/benchmarks/bench_*.py found"
    for modname in _bench_modules():
        _import(modname)


@pytest.mark.parametrize(("modname", "clsname", "attr"), _cases())
def test_benchmark_runs_once(modname, clsname, attr):
    module = _import(modname)
    if clsname is None:
        fn = getattr(module, attr)
        result = fn()
        if attr.startswith("timeraw_"):
            exec(compile(result, f"<{modname}.{attr}>", "exec"), {})  # noqa: S102
        return
    cls = getattr(module, clsname)
    args = _setup_cache(cls, _first_params(cls))
    bench = cls()
    setup = getattr(bench, "setup", None)
    teardown = getattr(bench, "teardown", None)
    if setup is not None:
        try:
            setup(*args)
        except NotImplementedError as exc:
            if teardown is not None:  # asv runs teardown after a skipping setup too
                teardown(*args)
            if not _raised_in_bench(exc):  # pyspec itself raised it: a failure, not an opt-out
                raise
            pytest.skip(f"setup skipped the case: {exc}")
    try:
        result = getattr(bench, attr)(*args)
        if attr.startswith("track_"):
            assert isinstance(result, numbers.Real), (
                f"track_ must return a number, got {type(result).__name__}")
        if attr.startswith("timeraw_"):
            exec(compile(result, f"<{modname}.{attr}>", "exec"), {})  # noqa: S102
    finally:
        if teardown is not None:
            teardown(*args)


def test_first_params_convention():
    """The helper picks the first value of each parameter list (flat list = one parameter)."""
    class A:
        params = ([3, 30], ["x", "y"])

    class B:
        params = [5, 50]

    class C:
        pass

    assert _first_params(A) == (3, "x")
    assert _first_params(B) == (5,)
    assert _first_params(C) == ()


# ---------------------------------------------------------------- peers.py sections

def _sections() -> list[str]:
    return sorted(p.name for p in pkgutil.iter_modules([str(BENCH_DIR / "peer_sections")]))


def test_peer_sections_import():
    peers = _import("peers")
    found = peers.sections()
    assert _sections(), "no bench/peer_sections/*.py found"
    for name in _sections():
        module = _import(f"peer_sections.{name}")
        assert isinstance(module.NAME, str) and module.NAME in found
        assert callable(module.add_arguments) and callable(module.run)


@pytest.mark.slow
@pytest.mark.parametrize("section", _sections())
def test_peers_quick_run(section):
    """``bench/peers.py SECTION --quick`` exits 0 and prints its table."""
    module = _import(f"peer_sections.{section}")
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "peers.py"), module.NAME, "--quick"],
                          capture_output=True, text=True, timeout=300, cwd=BENCH_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"## {module.NAME}" in proc.stdout
