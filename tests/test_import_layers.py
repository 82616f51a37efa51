"""pyspec's modules import each other without a cycle, at any level.

Every module under ``pyspec/`` is parsed with :mod:`ast`; every import of a
pyspec module is an edge, wherever it sits (module level, inside a function
or a class, under ``TYPE_CHECKING`` or ``try``): a function-level import
hides a cycle from the interpreter but not from the design. Relative imports
are resolved, ``from pyspec.pkg import name`` points at ``pyspec.pkg.name``
when that is a module, and a package ``__init__`` that re-exports from its
submodules has those edges too. A package's submodule does not depend on the
package merely by being inside it: the edge ``pkg.sub -> pkg`` exists only
where ``pkg.sub`` imports ``pkg`` itself. The lazy table of public names in
``pyspec/__init__.py`` (strings, not imports) is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyspec

ROOT = Path(pyspec.__file__).resolve().parent


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(p, root): p for p in root.rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` refers to: itself, else its longest module prefix."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(mod: str, path: Path, modules: dict[str, Path], top: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in modules else src
                       for a in node.names]
        else:
            continue
        for t in targets:
            if t == top or not t.startswith(top + "."):
                continue
            r = _resolve(t, modules)
            if r is not None and r != mod:
                out.add(r)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of the same top-level package it imports."""
    modules = _modules(root)
    return {m: _imports(m, p, modules, root.name) for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (iterative DFS)."""
    colour: dict[str, int] = {}
    for start in sorted(graph):
        if colour.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            state = colour.get(nxt, 0)
            if state == 1:
                return path[path.index(nxt):] + [nxt]
            if state == 0 and nxt in graph:
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def all_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles found by removing one edge of each found cycle in turn (for the message)."""
    g = {k: set(v) for k, v in graph.items()}
    found = []
    while (c := find_cycle(g)) is not None and len(found) < 50:
        found.append(c)
        g[c[-2]].discard(c[-1])
    return found


def test_the_graph_sees_function_level_and_relative_imports(tmp_path) -> None:
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from toy.a import f\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n    return b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("import os\n\n\ndef g():\n    from ..a import f\n")
    (pkg / "c.py").write_text("from toy import sub\nfrom toy.sub.b import g\n")
    graph = import_graph(pkg)
    assert graph["toy"] == {"toy.a"}
    assert graph["toy.a"] == {"toy.sub.b"}  # function level, relative
    assert graph["toy.sub.b"] == {"toy.a"}  # two levels up
    assert graph["toy.c"] == {"toy.sub", "toy.sub.b"}  # a submodule imported by name
    assert find_cycle(graph) in (["toy.a", "toy.sub.b", "toy.a"],
                                 ["toy.sub.b", "toy.a", "toy.sub.b"])
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert len(import_graph()) > 50


def test_no_import_cycle_in_pyspec() -> None:
    cycles = all_cycles(import_graph())
    assert not cycles, "import cycles in pyspec/:\n" + "\n".join(" -> ".join(c)
                                                                   for c in cycles)


def test_old_module_names_are_the_measure_modules_themselves() -> None:
    import importlib

    import pyspec.measure.lines.xcorr

    for old, new in (("pyspec.lines", "pyspec.measure.lines"),
                     ("pyspec.indices", "pyspec.measure.indices"),
                     ("pyspec.classify", "pyspec.measure.classify"),
                     ("pyspec.lines.xcorr", "pyspec.measure.lines.xcorr"),
                     ("pyspec.lines._kernels", "pyspec.measure.lines._kernels")):
        assert importlib.import_module(old) is importlib.import_module(new)
    from pyspec.lines.xcorr import XcorrTemplates

    assert XcorrTemplates is pyspec.measure.lines.xcorr.XcorrTemplates
    # nothing inside pyspec imports the old names
    graph = import_graph()
    users = {m for m, deps in graph.items() if deps & {"pyspec.lines", "pyspec.indices",
                                                          "pyspec.classify"}}
    assert users == set()
