"""How many codes an exact, triangle-inequality-pruned IVF search must verify.

Feasibility model for ``IVFHammingIndex.search(exact=True)`` (issue 21), in
NumPy, on the cached codes of simulated spectra (``PYSPEC_MIH_CACHE``): the
default IVF lists are built, the exact k = 10 radius tau of each query is
found by a full scan, and for every query the codes that cannot be ruled
out are counted:

* ``ring``: codes x of list c with ``|d(q, c) - d(c, x)| <= tau`` (the rows
  the ring layout scans, with the final tau known in advance);
* ``ring+p2``, ``ring+p4``: also ``|d(q, p) - d(p, x)| <= tau`` for 2 or 4
  global pivots (centroids chosen farthest-first), stored per row;
* ``prog8``, ``prog8+p4``, ``prog4+p4``: progressive, as a search that does
  not know tau runs: the 8 (4) nearest lists scanned whole, then the bound
  with the k-th distance those lists give;
* ``lists_vis``: lists with at least one row inside the band (final tau).

Fractions are of n, median and p90 over the queries.

    PYSPEC_MIH_CACHE=/work/cache/pyspec-mih nice python bench/ivf_exact_model.py 10000000 200
"""

from __future__ import annotations

import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from simulated_codes import simulated_codes  # noqa: E402

from pyspec import _core  # noqa: E402
from pyspec.index.ivf import IVFHammingIndex  # noqa: E402


def ham(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a ^ b).sum(axis=-1, dtype=np.int32)


def main(n: int, n_queries: int) -> None:
    codes, queries = simulated_codes(n, log=False)
    queries = queries[:n_queries]
    t0 = time.perf_counter()
    ivf = IVFHammingIndex(256)
    ivf.add(codes, num_threads=2)
    print(f"build {time.perf_counter() - t0:.1f} s, lists {ivf.centroids.shape[0]}", flush=True)
    cen, x = np.ascontiguousarray(ivf.centroids), ivf.codes
    n_lists = cen.shape[0]
    lst = np.repeat(np.arange(n_lists), ivf.list_sizes)
    dcx = ham(x, cen[lst])
    maxrad = np.zeros(n_lists, np.int32)
    np.maximum.at(maxrad, lst, dcx)
    print("d(c, x) percentiles 10/50/90/99", np.percentile(dcx, [10, 50, 90, 99]),
          "list radius 10/50/90", np.percentile(maxrad, [10, 50, 90]))
    rng = np.random.default_rng(0)
    piv = [cen[rng.integers(n_lists)]]
    for _ in range(3):
        far = np.min([ham(cen, p) for p in piv], axis=0)
        piv.append(cen[np.argmax(far)])
    dpx = np.stack([ham(x, p) for p in piv])
    tau = _core.hamming_knn(queries, x, np.arange(len(x), dtype=np.int64), 10, 257, 2)[1][:, -1]
    print("tau percentiles 10/50/90", np.percentile(tau, [10, 50, 90]))
    first_tau = {p: ivf.search(queries, 10, nprobe=p, num_threads=2).distances[:, -1]
                 for p in (4, 8)}
    out: dict[str, list[int]] = {key: [] for key in
                                 ("ring", "ring+p2", "ring+p4", "prog8", "prog8+p4",
                                  "prog4+p4", "lists_vis")}
    for i, q in enumerate(queries):
        dqc = ham(cen, q)
        lbc = np.abs(dqc[lst] - dcx)
        lbp = np.abs(np.array([ham(p[None], q)[0] for p in piv])[:, None] - dpx)
        lb2 = np.maximum(lbc, lbp[:2].max(0))
        lb4 = np.maximum(lbc, lbp.max(0))
        out["ring"].append((lbc <= tau[i]).sum())
        out["ring+p2"].append((lb2 <= tau[i]).sum())
        out["ring+p4"].append((lb4 <= tau[i]).sum())
        out["lists_vis"].append(np.unique(lst[lbc <= tau[i]]).size)
        order = np.argsort(dqc, kind="stable")
        for probes, name, lb in ((8, "prog8", lbc), (8, "prog8+p4", lb4), (4, "prog4+p4", lb4)):
            whole = np.zeros(n_lists, bool)
            whole[order[:probes]] = True
            whole = whole[lst]
            out[name].append(whole.sum() + (~whole & (lb <= first_tau[probes][i])).sum())
    for name, v in out.items():
        v = np.array(v)
        if name == "lists_vis":
            print(f"{name:10s} median {np.median(v):.0f} p90 {np.percentile(v, 90):.0f} "
                  f"of {n_lists}")
        else:
            print(f"{name:10s} median {np.median(v) / n:.4f} p90 {np.percentile(v, 90) / n:.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 200)
