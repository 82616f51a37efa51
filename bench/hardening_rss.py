"""Peak RSS of loading crafted inputs vs a normal input of the same kind (issue 16).

Each case runs in a fresh Python process that imports pyspec (and astropy),
builds nothing large itself, performs one load or ingest and reports its
peak resident set size (``ru_maxrss``). A crafted input must be refused
with a typed error and stay within 2x the peak of the normal input.

    python bench/hardening_rss.py
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PRELUDE = """
import resource, sys, json, numpy as np
import astropy.io.fits, pyspec
from pyspec.errors import PyspecError
from pathlib import Path
def report(outcome):
    print(json.dumps({{"outcome": outcome,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
try:
{body}
    report("loaded")
except PyspecError as exc:
    report("refused: " + type(exc).__name__ + ": " + str(exc)[:90])
except ValueError as exc:
    report("refused: ValueError: " + str(exc)[:90])
"""


def run_case(body: str) -> dict:
    code = PRELUDE.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    "))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    if out.returncode:
        return {"outcome": f"CRASHED rc={out.returncode}: {out.stderr[-200:]}", "rss_mb": 0}
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_inputs(root: Path) -> dict[str, Path]:
    from pyspec._integrity import dumps_checked, loads_checked
    from pyspec.data import sample_files
    from pyspec.engine import Engine
    from pyspec.ingest import ingest

    p: dict[str, Path] = {}
    sample = sample_files()[0]
    p["fits"] = root / "normal.fits.gz"
    shutil.copy(sample, p["fits"])
    p["bomb"] = root / "bomb.fits.gz"  # 1 MB of gzip, 1 GB inflated
    with gzip.open(p["bomb"], "wb", compresslevel=9) as fh:
        block = b"\0" * (1 << 20)
        for _ in range(1024):
            fh.write(block)
    p["zero"] = root / "zero.fits"
    os.symlink("/dev/zero", p["zero"])
    p["sparse"] = root / "sparse.fits"
    with open(p["sparse"], "wb") as fh:
        fh.truncate(4 << 30)
    for name, extra in (("in-normal", []), ("in-crafted", ["bomb", "zero", "sparse"])):
        d = root / name
        d.mkdir()
        for f in sample_files()[:8]:
            shutil.copy(f, d / f.name)
        for e in extra:
            os.symlink(p[e], d / p[e].name)
        p[name] = d
    ingest([p["in-normal"]], root / "store", grid="lamost", progress=False)
    p["store"] = root / "store"
    # a version-1 store (no checksums) whose grid.json asks for 10^8 pixels
    p["store-grid"] = root / "store-grid"
    shutil.copytree(p["store"], p["store-grid"])
    manifest = loads_checked(p["store-grid"] / "manifest.json")
    manifest.update(version=1, n_pixels=10**8)
    manifest.pop("checksums")
    (p["store-grid"] / "manifest.json").write_text(json.dumps(manifest))
    (p["store-grid"] / "grid.json").write_text(json.dumps(
        {"kind": "linspace", "start": 3000.0, "stop": 9000.0, "n": 10**8, "name": None}))
    # a version-1 store whose part is a 1 MB compressed npz inflating to 1 GB
    p["store-npz"] = root / "store-npz"
    shutil.copytree(p["store"], p["store-npz"])
    shutil.rmtree(p["store-npz"] / "parts" / "part-000000")  # an old-layout part replaces it
    manifest = loads_checked(p["store-npz"] / "manifest.json")
    manifest.update(version=1)
    manifest.pop("checksums")
    (p["store-npz"] / "manifest.json").write_text(json.dumps(manifest))
    import numpy as np
    np.savez_compressed(p["store-npz"] / "parts" / "part-000000.npz",
                        m_id=np.zeros(1 << 27, dtype=np.float64))
    from pyspec.models.lsh import LSHHasher
    Engine.build(p["store"], LSHHasher(n_bits=64, random_state=0), out=root / "engine")
    p["engine"] = root / "engine"
    p["engine-grid"] = root / "engine-grid"
    shutil.copytree(p["engine"], p["engine-grid"])
    info = loads_checked(p["engine-grid"] / "engine.json")
    info["grid"] = {"kind": "linspace", "start": 3000.0, "stop": 9000.0, "n": 10**8,
                    "name": None}
    (p["engine-grid"] / "engine.json").write_bytes(dumps_checked(info))
    return p


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="pyspec-rss-"))
    p = make_inputs(root)
    read = "from pyspec.io import read_batch\nread_batch({!r})"
    store = ("from pyspec.store import SpectrumStore\ns = SpectrumStore.open({!r})\n"
             "len(s.meta)\nlist(s.iter_chunks())")
    engine = ("from pyspec.engine import Engine\ne = Engine.open({!r})\n"
              "e.search_prepared(np.zeros((1, e.n_pixels), np.float32), 10)")
    search = ("from pyspec.index.hamming import HammingIndex\nix = HammingIndex(256)\n"
              "ix.add(np.zeros((100, 4), np.uint64))\nix.search(ix.codes[:1], k={})")
    ingest = ("from pyspec.ingest import ingest\n"
              "ingest([{!r}], {!r}, grid='lamost', progress=False)")
    cases = [
        ("FITS read", "normal LAMOST .fits.gz", read.format(str(p["fits"]))),
        ("FITS read", "gzip bomb (1 MB -> 1 GB)", read.format(str(p["bomb"]))),
        ("FITS read", "symlink to /dev/zero", read.format(str(p["zero"]))),
        ("FITS read", "4 GB sparse file", read.format(str(p["sparse"]))),
        ("ingest", "8 normal files", ingest.format(str(p["in-normal"]), str(root / "i1"))),
        ("ingest", "8 normal + bomb, /dev/zero, 4 GB sparse",
         ingest.format(str(p["in-crafted"]), str(root / "i2"))),
        ("store load", "normal store", store.format(str(p["store"]))),
        ("store load", "v1 store, grid n = 1e8", store.format(str(p["store-grid"]))),
        ("store load", "v1 store, npz part inflating to 1 GB", store.format(str(p["store-npz"]))),
        ("engine load", "normal engine + query", engine.format(str(p["engine"]))),
        ("engine load", "re-signed engine.json, grid n = 1e8",
         engine.format(str(p["engine-grid"]))),
        ("Hamming search", "100 codes, k = 10", search.format(10)),
        ("Hamming search", "100 codes, k = 200,000,000", search.format(200_000_000)),
    ]
    print("| kind | input | outcome | peak RSS (MB) | / normal |")
    print("|---|---|---|---:|---:|")
    normal: dict[str, float] = {}
    for kind, label, body in cases:
        res = run_case(body)
        normal.setdefault(kind, res["rss_mb"])
        print(f"| {kind} | {label} | {res['outcome']} | {res['rss_mb']:.0f} | "
              f"{res['rss_mb'] / normal[kind]:.2f} |", flush=True)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
