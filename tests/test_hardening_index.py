"""Issue 16 hardening of the indexes: crafted graphs, id ranges, result sizes, threads."""

from __future__ import annotations

import struct
import sys
import threading

import numpy as np
import pytest

from pyspec._fileformat import read_container, write_container
from pyspec.errors import IndexFormatError
from pyspec.index.graph import _HNSW_HEAD, GraphIndex
from pyspec.index.hamming import HammingIndex
from pyspec.index.pq import PQIndex
from pyspec.models.pq import ProductQuantizer

N_READERS = 7


# ----------------------------------------------------------------------------- GraphIndex

@pytest.mark.parametrize("bad", [{"M": 0}, {"M": 1}, {"dim": 0}, {"ef": 0},
                                 {"ef_construction": 0}, {"dim": 1 << 30}])
def test_graph_parameters_are_validated(bad):
    params = {"dim": 4, **bad}
    with pytest.raises(ValueError, match="must be in"):
        GraphIndex(**params)


def _graph_file(tmp_path, rng, n=300):
    x = rng.normal(size=(n, 8)).astype(np.float32)
    g = GraphIndex(8, M=4, ef_construction=20)
    g.add(x, num_threads=1)
    path = tmp_path / "g.bin"
    g.save(path)
    return path, x


def _recontainer(path, edit):
    """Rewrite a graph file with its blob edited and every checksum valid."""
    arrays, meta = read_container(path, b"GX")
    blob = bytearray(arrays["graph"].tobytes())
    edit(blob)
    write_container(path, b"GX", {"graph": np.frombuffer(bytes(blob), np.uint8),
                                  "ids": arrays["ids"]}, meta)


def _set_u32(offset, value):
    def edit(blob):
        blob[offset:offset + 4] = struct.pack("<I", value)
    return edit


def test_graph_round_trip_still_works(tmp_path, rng):
    path, x = _graph_file(tmp_path, rng)
    g = GraphIndex.load(path)
    assert g.search(x[:3], 1).ids[:, 0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("case", ["neighbour", "count", "entry", "level_size", "deleted",
                                  "header_count", "truncated", "label"])
def test_crafted_graph_with_valid_checksum_is_refused(tmp_path, rng, case):
    # each of these made hnswlib read out of bounds (a segfault) before the structural check
    path, _ = _graph_file(tmp_path, rng)
    head = _HNSW_HEAD.size
    per_elem = 2 * 4 * 4 + 4 + 8 * 4 + 8
    edits = {
        "neighbour": _set_u32(head + 4, 10**9),                 # first level-0 link of node 0
        "count": _set_u32(head, 60000),                         # level-0 link count
        "entry": _set_u32(52, 10**6),                           # enterpoint_node
        "level_size": _set_u32(head + 300 * per_elem, 10**8),   # node 0's upper-level bytes
        "deleted": lambda b: b.__setitem__(head + 2, 1),        # deleted mark
        "header_count": lambda b: b.__setitem__(slice(16, 24), struct.pack("<Q", 1 << 40)),
        "truncated": lambda b: b.__delitem__(slice(len(b) - 7, len(b))),
        "label": lambda b: b.__setitem__(slice(head + per_elem - 8, head + per_elem),
                                         struct.pack("<Q", 1 << 62)),
    }
    _recontainer(path, edits[case])
    with pytest.raises(IndexFormatError, match="graph"):
        GraphIndex.load(path)


# ----------------------------------------------------------------------------- ids and k

def _codes(rng, n, words=4):
    return rng.integers(0, 2**63, size=(n, words), dtype=np.uint64)


@pytest.mark.parametrize("ids", [np.array([0, -1, 2]), np.array([0, 2**63, 1], dtype=np.uint64)])
def test_ids_outside_int64_range_are_refused(rng, ids):
    index = HammingIndex(256)
    with pytest.raises(ValueError, match="ids"):
        index.add(_codes(rng, 3), ids=ids)
    assert len(index) == 0
    graph = GraphIndex(4)
    with pytest.raises(ValueError, match="ids"):
        graph.add(np.zeros((3, 4), np.float32), ids=ids)


def test_hamming_load_refuses_negative_ids(tmp_path, rng):
    index = HammingIndex(256)
    index.add(_codes(rng, 4))
    index.save(tmp_path / "h.bin")
    arrays, meta = read_container(tmp_path / "h.bin", b"HX")
    write_container(tmp_path / "h.bin", b"HX", {"codes": arrays["codes"],
                                                 "ids": np.array([0, 1, -1, 3])}, meta)
    with pytest.raises(IndexFormatError, match="negative ids"):
        HammingIndex.load(tmp_path / "h.bin")


@pytest.fixture(scope="module")
def pq_index():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    pq = ProductQuantizer(n_segments=4, n_centroids=16, random_state=0).fit(x)
    return pq, x


def test_huge_k_is_refused_but_padding_still_works(rng, pq_index):
    index = HammingIndex(256)
    index.add(_codes(rng, 100))
    with pytest.raises(ValueError, match="larger than the index"):
        index.search(index.codes[:1], k=200_000_000)
    res = index.search(index.codes[:2], k=150)  # modest padding is still allowed
    assert res.ids.shape == (2, 150)
    assert (res.ids[:, 100:] == -1).all()
    pq, x = pq_index
    pqi = PQIndex(pq)
    pqi.add(x[:100])
    with pytest.raises(ValueError, match="larger than the index"):
        pqi.search(x[:1], k=200_000_000)


# ----------------------------------------------------------------------------- threads

def _run_threads(writer, readers):
    errors = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001  reported by the main thread
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guard(f)) for f in [*readers, writer]]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: races show up in a short test
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    if errors:
        raise errors[0]


def _fields(result):
    return result.ids, result.distances


def _check_concurrent(make, add, search, batches, queries):
    """1 writer adds ``batches`` while 7 readers search; every result must equal a serial
    search of some prefix of the batches (a consistent snapshot), and no row may be lost."""
    serial = make()
    expected = [search(serial, queries)]
    for codes, ids in batches:
        add(serial, codes, ids)
        expected.append(search(serial, queries))
    def key(result):
        return b"".join(np.ascontiguousarray(a).tobytes() for a in result)

    states = {key(e): i for i, e in enumerate(expected)}
    shared = make()
    done = threading.Event()
    started = threading.Barrier(N_READERS + 1)
    seen: list[set[int]] = [set() for _ in range(N_READERS)]

    def writer():
        started.wait(timeout=10)
        for codes, ids in batches:
            add(shared, codes, ids)
        done.set()

    def reader(r):
        def run():
            started.wait(timeout=10)
            while True:
                finished = done.is_set()
                got = search(shared, queries)
                assert key(got) in states, "a search saw a state no serial run produces"
                seen[r].add(states[key(got)])
                if finished:
                    return
        return run

    _run_threads(writer, [reader(r) for r in range(N_READERS)])
    final = search(shared, queries)
    assert all(np.array_equal(a, b) for a, b in zip(final, expected[-1], strict=True))
    return shared, serial


# "ivf": readers assign the tail left by the writer's adds to the inverted lists
# (under the write lock) and the lists are retrained as the codes double
@pytest.mark.parametrize("method", ["scan", "ivf"])
def test_hamming_one_writer_seven_readers(rng, method):
    batches = [(_codes(rng, 64), np.arange(64 * b, 64 * (b + 1)) * 3) for b in range(100)]
    queries = _codes(rng, 5)
    shared, serial = _check_concurrent(
        lambda: HammingIndex(256, method=method), lambda ix, c, i: ix.add(c, ids=i),
        lambda ix, q: _fields(ix.search(q, 10, num_threads=1)), batches, queries)
    np.testing.assert_array_equal(shared.ids, serial.ids)
    np.testing.assert_array_equal(shared.codes, serial.codes)


def test_pq_one_writer_seven_readers(pq_index):
    pq, x = pq_index
    # float spectra: encoding releases the GIL, which is where the old queue lost rows
    data = np.repeat(x, 10, axis=0)
    batches = [(data[b * 8:(b + 1) * 8], np.arange(b * 8, (b + 1) * 8)) for b in range(500)]
    shared, serial = _check_concurrent(
        lambda: PQIndex(pq), lambda ix, c, i: ix.add(c, ids=i),
        lambda ix, q: _fields(ix.search(q, 5, num_threads=1)), batches, x[:4])
    np.testing.assert_array_equal(shared.ids, serial.ids)
    np.testing.assert_array_equal(shared.codes, serial.codes)


@pytest.mark.parametrize("kind", ["hamming", "pq"])
def test_concurrent_writers_lose_no_rows(rng, pq_index, kind):
    pq, x = pq_index
    if kind == "hamming":
        index, data = HammingIndex(256), _codes(rng, 4000)
    else:
        index, data = PQIndex(pq), np.repeat(x, 10, axis=0)
    per_thread = len(data) // 4

    def writer(t):
        def run():
            for s in range(t * per_thread, (t + 1) * per_thread, 25):
                index.add(np.ascontiguousarray(data[s:s + 25]), ids=np.arange(s, s + 25))
        return run

    _run_threads(writer(0), [writer(t) for t in range(1, 4)])
    assert len(index) == len(data)
    order = np.argsort(index.ids)
    np.testing.assert_array_equal(index.ids[order], np.arange(len(data)))
    codes = data if kind == "hamming" else pq.encode(data)
    np.testing.assert_array_equal(index.codes[order], codes)  # every code kept its id


def _interleave(monkeypatch, module, name, action):
    """Patch ``module.name`` so that its first call starts ``action`` in another thread and
    gives it 50 ms before going on: the interleaving a race needs, made deterministic."""
    original = getattr(module, name)
    started: list[threading.Thread] = []

    def patched(*args, **kwargs):
        if not started:
            t = threading.Thread(target=action)
            started.append(t)
            t.start()
            t.join(timeout=0.05)  # with a lock the action waits for us; without, it runs now
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, patched)
    return started


def test_pq_add_during_a_search_is_not_lost(monkeypatch, pq_index):
    import pyspec.index.pq as pq_module

    pq, x = pq_index
    index = PQIndex(pq)
    index.add(x[:100])
    # the search folds queued rows into the arrays; an add landing in the middle was dropped
    started = _interleave(monkeypatch, pq_module.np, "concatenate",
                          lambda: index.add(x[100:150]))
    index.search(x[:1], 3)
    started[0].join()
    monkeypatch.undo()
    assert len(index) == 150
    np.testing.assert_array_equal(np.sort(index.ids), np.arange(150))
    np.testing.assert_array_equal(index.codes[np.argsort(index.ids)], pq.encode(x[:150]))


def test_hamming_adds_from_two_threads_get_distinct_default_ids(monkeypatch, rng):
    import pyspec.index.hamming as hamming_module

    index = HammingIndex(256)
    first, second = _codes(rng, 10), _codes(rng, 10)
    started = _interleave(monkeypatch, hamming_module, "as_ids", lambda: index.add(second))
    index.add(first)
    started[0].join()
    monkeypatch.undo()
    assert len(index) == 20
    np.testing.assert_array_equal(np.sort(index.ids), np.arange(20))
    by_id = index.codes[np.argsort(index.ids)]
    assert {tuple(r) for r in by_id} == {tuple(r) for r in np.vstack([first, second])}


def test_locked_indexes_still_pickle(pq_index, rng):
    import pickle

    pq, x = pq_index
    index = PQIndex(pq)
    index.add(x[:50])
    copy = pickle.loads(pickle.dumps(index))
    copy.add(x[50:60])  # the copy has a working lock of its own
    assert (len(index), len(copy)) == (50, 60)
    hamming = HammingIndex(256)
    hamming.add(_codes(rng, 5))
    again = pickle.loads(pickle.dumps(hamming))
    again.add(_codes(rng, 2))
    np.testing.assert_array_equal(again.ids, np.arange(7))
