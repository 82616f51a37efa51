"""Deterministic corruption harness over every file type pyspec writes.

Builds small artefacts of each kind (a spectrum store, a Hamming and a PQ
engine, the four models, the three indexes), then runs trials: each trial
damages one file of one artefact -- truncation, bit flips, a crafted size
or value (re-signed so that the checksum passes and the loader's own
validation is what is tested) -- loads the artefact completely and classifies
the outcome:

``identical``  loaded, and everything read equals the pristine artefact
               (the damage hit bytes that carry no information, e.g. padding);
``authored``   a re-signed edit of a free-text label (a column name or
               description) to another string: legal, loaded as written;
``rejected``   a typed :class:`pyspec.errors.PyspecError` was raised;
``wrong``      loaded without error but something differs (a silent wrong load);
``untyped``    any other exception;
``crash`` / ``hang``  only seen by :func:`run_isolated`, which runs trials in a
               child process and restarts it after a crash or a 60 s stall.

Run the long version from the repository root::

    python tests/fuzz/harness.py --trials 50000 --seed 16 --out fuzz-report.json

``tests/test_fuzz_corruption.py`` runs a few hundred trials in-process with a
fixed seed on every CI run.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

OUTCOMES = ("identical", "rejected", "authored", "wrong", "untyped", "crash", "hang")
# free-text labels of a re-signed description: any string is a legal value, so a re-signed
# edit of one is an authored document, loaded as written ("authored"), not a wrong load
_FREE_TEXT = ("name", "description")
_LAST_EDIT: list[str] = []  # what the last re-signed JSON edit changed (for reports)
_CRAFTED_INTS = (0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 10**8, 10**12)


# ----------------------------------------------------------------------------- artefacts

def build_artefacts(root: Path) -> dict[str, Path]:
    """Write one small artefact of every kind under ``root``; name -> path."""
    from pyspec.engine import Engine
    from pyspec.index.graph import GraphIndex
    from pyspec.index.hamming import HammingIndex
    from pyspec.index.pq import PQIndex
    from pyspec.models.itq import ITQHasher
    from pyspec.models.lsh import LSHHasher
    from pyspec.models.pil import PILHasher
    from pyspec.models.pq import ProductQuantizer
    from pyspec.preprocess import Preprocessor, WavelengthGrid
    from pyspec.store import SpectrumStore

    rng = np.random.default_rng(16)
    grid = WavelengthGrid.preset("halpha-140")
    n = 48
    flux = rng.normal(size=(n, 140)).astype(np.float32)
    ivar = rng.uniform(0.5, 2.0, size=(n, 140)).astype(np.float32)
    settings = Preprocessor(grid).to_dict()
    with SpectrumStore.create(root / "store", grid, settings, rows_per_part=16) as w:
        for s in range(0, n, 12):
            w.append(flux[s:s + 12], ivar[s:s + 12],
                     [{"id": f"s{i}", "file": f"f{i}.fits", "z": 0.01 * i,
                       "class": "STAR" if i % 2 else "GALAXY", "coverage": 1.0, "n_int": i}
                      for i in range(s, s + 12)])
            w.reject(f"bad{s}.fits", "truncated file")
    store = SpectrumStore.open(root / "store")
    out = {"store": root / "store"}
    lsh = LSHHasher(n_bits=64, random_state=0).fit(flux)
    out["engine-hamming"] = Engine.build(store, lsh, out=root / "engine-hamming").path
    pq = ProductQuantizer(n_segments=4, n_centroids=8, random_state=0).fit(flux)
    out["engine-pq"] = Engine.build(store, pq, out=root / "engine-pq").path
    models = {"model-lsh": lsh, "model-pq": pq,
              "model-itq": ITQHasher(n_bits=32, n_iter=3, random_state=0).fit(flux),
              "model-pil": PILHasher(n_bits=32, hidden=(40,), random_state=0).fit(flux)}
    for name, model in models.items():
        model.save(root / f"{name}.bin")
        out[name] = root / f"{name}.bin"
    hamming = HammingIndex(64)
    hamming.add(lsh.encode(flux), ids=np.arange(n) * 7)
    hamming.save(root / "index-hamming.bin")
    pq_index = PQIndex(pq)
    pq_index.add(flux)
    pq_index.save(root / "index-pq.bin")
    graph = GraphIndex(8, M=4, ef_construction=16)
    graph.add(flux[:, :8], num_threads=1)
    graph.save(root / "index-graph.bin")
    for name in ("index-hamming", "index-pq", "index-graph"):
        out[name] = root / f"{name}.bin"
    return out


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype.str, p.shape)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _table_digest(table: Any) -> list[str]:
    return [_digest(name, np.asarray(table[name]), str(table[name].unit)) for name in
            table.colnames]


# description fields that only inform (provenance, timings, where the store was): a
# re-signed edit of them changes nothing that is loaded
_INFORMATIONAL = ("pyspec_version", "provenance", "timings_s", "model_params", "store",
                  "store_relative")
_PROBE = np.random.default_rng(7).normal(size=(3, 140)).astype(np.float32)


def load_store(path: Path) -> str:
    from pyspec.store import SpectrumStore

    s = SpectrumStore.open(path)
    chunks = [_digest(a, b, c) for a, b, c in s.iter_chunks(10)]
    s.verify()
    manifest = {k: v for k, v in s.manifest.items() if k not in _INFORMATIONAL}
    return _digest(manifest, s.grid.to_dict(), s.preprocessing, np.asarray(s.flux),
                   np.asarray(s.ivar), _table_digest(s.meta), _table_digest(s.rejects), chunks)


def load_engine(path: Path) -> str:
    from pyspec.engine import Engine

    e = Engine.open(path)
    pre = e.preprocessor.to_dict()
    res = e.search_prepared(_PROBE, 5, num_threads=1)
    meta = e.meta_rows(np.arange(len(e)), None)
    e.verify()
    info = {k: v for k, v in e.info.items() if k not in _INFORMATIONAL}
    return _digest(info, pre, res.ids, res.distances, _table_digest(meta),
                   np.asarray(e.index.codes), np.asarray(e.index.ids))


def _load_model(cls_path: str) -> Callable[[Path], str]:
    def load(path: Path) -> str:
        import importlib

        module, name = cls_path.rsplit(".", 1)
        model = getattr(importlib.import_module(module), name).load(path)
        out = model.encode(_PROBE)
        # hyper-parameters that only steered fitting (seed, iterations, ridge) are not part
        # of the fitted state and cannot be checked; what the model computes is compared
        return _digest(out, getattr(model, "n_bits", None), model.n_features_in_)
    return load


def load_index(path: Path) -> str:
    from pyspec.index.graph import GraphIndex
    from pyspec.index.hamming import HammingIndex
    from pyspec.index.pq import PQIndex

    kind = path.read_bytes()[6:8] if path.stat().st_size >= 8 else b""
    if kind == b"GX":
        index = GraphIndex.load(path)
        res = index.search(_PROBE[:, :8], 4, num_threads=1)
    elif kind == b"QX":
        index = PQIndex.load(path)
        res = index.search(_PROBE, 4, num_threads=1)
        return _digest(res.ids, res.distances, np.asarray(index.codes), np.asarray(index.ids))
    else:
        index = HammingIndex.load(path)
        codes = np.ascontiguousarray(index.codes[:3]) if len(index) else index.codes
        res = index.search(codes, 4, num_threads=1)
    return _digest(res.ids, res.distances, np.asarray(index.ids))


LOADERS: dict[str, Callable[[Path], str]] = {
    "store": load_store, "engine-hamming": load_engine, "engine-pq": load_engine,
    "model-lsh": _load_model("pyspec.models.lsh.LSHHasher"),
    "model-itq": _load_model("pyspec.models.itq.ITQHasher"),
    "model-pil": _load_model("pyspec.models.pil.PILHasher"),
    "model-pq": _load_model("pyspec.models.pq.ProductQuantizer"),
    "index-hamming": load_index, "index-pq": load_index, "index-graph": load_index,
}


def files_of(path: Path) -> list[Path]:
    """Every file of an artefact (a directory's files, or the file itself)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- corruptions

def _resign_json(data: bytes, rng: np.random.Generator) -> bytes | None:
    """A JSON document with one numeric or string leaf replaced by a crafted value,
    its checksum recomputed (so only the loader's validation can catch it)."""
    from pyspec._integrity import dumps_checked

    try:
        obj = json.loads(data)
    except ValueError:
        return None
    leaves: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else []
        for k, v in items:
            if k == "checksum":
                continue
            if isinstance(v, dict | list):
                walk(v)
            else:
                leaves.append((node, k))

    walk(obj)
    if not leaves:
        return None
    node, key = leaves[rng.integers(len(leaves))]
    choices: list[Any] = [*_CRAFTED_INTS, 1e300, float("nan"), "../../etc/passwd.npy",
                          "/etc/passwd", None, True, "x" * 40, [], {}]
    node[key] = choices[rng.integers(len(choices))]
    _LAST_EDIT[:] = [f"{key}={node[key]!r}"[:80]]
    return dumps_checked(obj) if isinstance(obj, dict) and "checksum" in json.loads(data) \
        else json.dumps(obj).encode()


def _resign_container(data: bytes, rng: np.random.Generator) -> bytes | None:
    """A pyspec container with one header size field crafted and the header CRC fixed."""
    head = struct.Struct("<8sIIQ")
    entry = struct.Struct("<32sBB6x4QQQ")
    if len(data) < head.size or data[:6] != b"PYSPEC":
        return None
    _, _, n_arrays, meta_len = head.unpack_from(data)
    end = head.size + entry.size * n_arrays + meta_len
    if n_arrays == 0 or end + 4 > len(data):
        return None
    buf = bytearray(data)
    meta_start = head.size + entry.size * n_arrays
    numbers = [m.span() for m in re.finditer(rb"-?\d+", data[meta_start:end])]
    if numbers and rng.integers(2):
        # a number of the JSON metadata, same length (offsets stay valid): all 9s or 0s
        a, b = numbers[rng.integers(len(numbers))]
        buf[meta_start + a:meta_start + b] = (b"9" if rng.integers(2) else b"0") * (b - a)
    else:
        i = int(rng.integers(n_arrays))
        field = int(rng.integers(6))  # shape[0..3], offset, nbytes
        pos = head.size + i * entry.size + 32 + 2 + 6 + 8 * field
        value = _CRAFTED_INTS[rng.integers(len(_CRAFTED_INTS))] % 2**64
        buf[pos:pos + 8] = struct.pack("<Q", value)
    buf[end:end + 4] = struct.pack("<I", zlib.crc32(bytes(buf[:end])))
    return bytes(buf)


def corrupt(data: bytes, name: str, rng: np.random.Generator) -> tuple[str, bytes]:
    """One corruption of ``data`` (the bytes of file ``name``): (kind, new bytes)."""
    kind = ("truncate", "bitflip", "bitflip", "crafted")[rng.integers(4)]
    if kind == "truncate" or not data:
        return "truncate", data[:rng.integers(len(data))] if data else b""
    if kind == "bitflip":
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(len(buf)))
            buf[pos] ^= 1 << int(rng.integers(8))
        return "bitflip", bytes(buf)
    crafted = None
    if name.endswith(".json"):
        crafted = _resign_json(data, rng)
    elif name.endswith(".bin"):
        crafted = _resign_container(data, rng)
    if crafted is None:  # raw words: overwrite an aligned word near the start with a size
        buf = bytearray(data)
        pos = int(rng.integers(min(len(buf), 4096))) & ~7
        word = struct.pack("<Q", _CRAFTED_INTS[rng.integers(len(_CRAFTED_INTS))] % 2**64)
        buf[pos:pos + 8] = word[:len(buf) - pos]
        crafted = bytes(buf)
    return "crafted", crafted


def _replace(path: Path, data: bytes) -> None:
    # a new inode: memory maps of earlier trials keep the old bytes (no SIGBUS)
    tmp = path.with_name(f".{path.name}.fuzz")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- trials

def plan(artefacts: dict[str, Path], n_trials: int, seed: int) -> list[tuple[str, Path, int]]:
    """(artefact, file, trial seed) for each trial, spread evenly over the artefacts."""
    rng = np.random.default_rng(seed)
    names = sorted(artefacts)
    out = []
    for t in range(n_trials):
        name = names[t % len(names)]
        files = files_of(artefacts[name])
        out.append((name, files[rng.integers(len(files))], int(rng.integers(2**63))))
    return out


def run_trial(name: str, path: Path, artefact: Path, seed: int, reference: str
              ) -> tuple[str, str, str]:
    """Corrupt ``path``, load ``artefact``, restore; (corruption, outcome, detail)."""
    from pyspec.errors import PyspecError

    original = path.read_bytes()
    kind, damaged = corrupt(original, path.name, np.random.default_rng(seed))
    _replace(path, damaged)
    try:
        got = LOADERS[name](artefact)
    except PyspecError:
        outcome, detail = "rejected", ""
    except Exception as exc:  # noqa: BLE001  what the harness is looking for
        outcome, detail = "untyped", f"{type(exc).__name__}: {exc}"[:300]
    else:
        outcome, detail = ("identical", "") if got == reference else ("wrong", "")
        if outcome == "wrong" and kind == "crafted" and path.suffix == ".json":
            detail = f"re-signed edit {_LAST_EDIT}"
            if _LAST_EDIT and _LAST_EDIT[0].split("=")[0] in _FREE_TEXT and "='" in _LAST_EDIT[0]:
                outcome = "authored"  # any text is a legal label: loaded as written
    finally:
        _replace(path, original)
        gc.collect(0)
    return kind, outcome, detail


def run_inprocess(root: Path, n_trials: int, seed: int) -> dict[str, Any]:
    """Build artefacts under ``root`` and run ``n_trials`` trials in this process."""
    artefacts = build_artefacts(root)
    references = {name: LOADERS[name](p) for name, p in artefacts.items()}
    counts: dict[str, Counter] = {name: Counter() for name in artefacts}
    examples: list[dict[str, Any]] = []
    for i, (name, path, tseed) in enumerate(plan(artefacts, n_trials, seed)):
        kind, outcome, detail = run_trial(name, path, artefacts[name], tseed, references[name])
        counts[name][outcome] += 1
        counts[name][f"corruption:{kind}"] += 1
        if outcome in ("wrong", "untyped") and len(examples) < 50:
            examples.append({"trial": i, "artefact": name, "file": str(path.relative_to(root)),
                             "corruption": kind, "outcome": outcome, "detail": detail})
    return {"counts": {k: dict(v) for k, v in counts.items()}, "examples": examples}


def _pump(stream: Any, lines: Any) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_isolated(n_trials: int, seed: int, stall_s: float = 60.0) -> dict[str, Any]:
    """Run the trials in a child process; a crash or stall is recorded and the child restarted."""
    import queue
    import subprocess
    import threading

    counts: dict[str, Counter] = {}
    examples: list[dict[str, Any]] = []
    start = 0
    root = Path(tempfile.mkdtemp(prefix="pyspec-fuzz-"))
    while start < n_trials:
        lines: queue.Queue = queue.Queue()
        with subprocess.Popen([sys.executable, __file__, "--child", str(root), "--trials",
                               str(n_trials), "--seed", str(seed), "--start", str(start)],
                              stdout=subprocess.PIPE, text=True) as proc:
            reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
            reader.start()
            current, stalled = start, False
            while True:
                try:
                    line = lines.get(timeout=stall_s)
                except queue.Empty:
                    stalled = True
                    proc.kill()
                    break
                if line is None:
                    break
                rec = json.loads(line)
                counts.setdefault(rec["artefact"], Counter())[rec["outcome"]] += 1
                counts[rec["artefact"]][f"corruption:{rec['corruption']}"] += 1
                if rec["outcome"] in ("wrong", "untyped") and len(examples) < 50:
                    examples.append(rec)
                current = rec["trial"] + 1
            proc.wait()
            reader.join(timeout=5)
        if current < n_trials and (stalled or proc.returncode != 0):
            _record_failure(counts, examples, root, n_trials, seed, current,
                            "hang" if stalled else "crash")
            current += 1
        start = current
    return {"counts": {k: dict(v) for k, v in counts.items()}, "examples": examples}


def _record_failure(counts: dict[str, Counter], examples: list, root: Path, n_trials: int,
                    seed: int, trial: int, outcome: str) -> None:
    artefacts = {p.name.removesuffix(".bin"): p for p in root.iterdir()
                 if not p.name.startswith(".")}
    name, path, _ = plan(artefacts, n_trials, seed)[trial]
    counts.setdefault(name, Counter())[outcome] += 1
    examples.append({"trial": trial, "artefact": name, "file": str(path), "outcome": outcome})
    for p in files_of(root):  # restore the pristine copy the child was damaging
        backup = p.with_name(f".{p.name}.pristine")
        if backup.exists():
            os.replace(backup, p)


def _child(root: Path, n_trials: int, seed: int, start: int) -> None:
    import resource

    # a runaway allocation becomes a MemoryError (an untyped failure), not the OOM killer
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    if not (root / "store").exists():
        build_artefacts(root)
    artefacts = {p.name.removesuffix(".bin"): p for p in sorted(root.iterdir())
                 if not p.name.startswith(".")}
    references = {name: LOADERS[name](p) for name, p in artefacts.items()}
    for i, (name, path, tseed) in enumerate(plan(artefacts, n_trials, seed)):
        if i < start:
            continue
        backup = path.with_name(f".{path.name}.pristine")
        backup.write_bytes(path.read_bytes())  # restores the file if this trial crashes
        kind, outcome, detail = run_trial(name, path, artefacts[name], tseed, references[name])
        backup.unlink()
        print(json.dumps({"trial": i, "artefact": name, "file": str(path.relative_to(root)),
                          "corruption": kind, "outcome": outcome, "detail": detail}),
              flush=True)


def table(report: dict[str, Any]) -> str:
    """Markdown table of outcomes per artefact."""
    rows = ["| artefact | trials | identical | rejected (typed) | authored | wrong | untyped | "
            "crash | hang |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    total: Counter = Counter()
    for name, c in sorted(report["counts"].items()):
        n = sum(c.get(o, 0) for o in OUTCOMES)
        total.update({o: c.get(o, 0) for o in OUTCOMES})
        rows.append(f"| {name} | {n} | " + " | ".join(str(c.get(o, 0)) for o in OUTCOMES) + " |")
    rows.append(f"| **all** | {sum(total.values())} | "
                + " | ".join(str(total.get(o, 0)) for o in OUTCOMES) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(Path(args.child), args.trials, args.seed, args.start)
        return 0
    t0 = time.monotonic()
    report = run_isolated(args.trials, args.seed)
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["command"] = " ".join(["python", "tests/fuzz/harness.py", *(argv or sys.argv[1:])])
    print(table(report))
    print(f"{args.trials} trials in {report['seconds']} s")
    for ex in report["examples"][:10]:
        print(ex)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    bad = sum(c.get(o, 0) for c in report["counts"].values()
              for o in ("wrong", "untyped", "crash", "hang"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
