"""Weights warmed on a background thread while a query is prepared (pyspec._warm)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import pyspec._warm as warm
from pyspec.models.pil import PILHasher


def test_line_views_take_one_element_per_cache_line_of_large_arrays() -> None:
    big = np.arange(1 << 19, dtype=np.float32).reshape(512, 1024)  # 2 MiB
    small = np.ones(100, np.float64)
    strided = np.ones((2048, 512), np.float32)[:, ::2]  # not contiguous
    views = warm.line_views([big, small, strided, np.ones(1 << 18, np.float64)])
    assert len(views) == 2
    assert np.array_equal(views[0], big.reshape(-1)[::16])  # 64 bytes / 4 bytes
    assert views[1].size == (1 << 18) // 8
    assert np.shares_memory(views[0], big)  # views, not copies


def test_start_never_waits_and_never_queues_a_second_warm_up(monkeypatch) -> None:
    release = threading.Event()
    calls = []

    def slow_touch(views):
        calls.append(len(views))
        release.wait(10)

    monkeypatch.setattr(warm, "touch", slow_touch)
    warmer = warm.WeightWarmer([np.ones(1 << 19, np.float32)])
    if not warmer._views:
        pytest.skip("one CPU: no warm-up")
    warmer.start()
    warmer.start()  # the first is still running: skipped, not queued
    release.set()
    warmer._pending.result(timeout=10)
    assert calls == [1]
    warmer.start()  # the last one finished: a new one runs
    warmer._pending.result(timeout=10)
    assert calls == [1, 1]


def test_pil_streams_its_encoder_weights(rng) -> None:
    X = rng.random((300, 64), dtype=np.float32)
    model = PILHasher(n_bits=32, hidden=(48,), random_state=0).fit(X)
    assert [w.shape for w in model.streamed_arrays()] == [w.shape for w in model.encoder_weights_]
    assert all(a is b for a, b in zip(model.streamed_arrays(), model.encoder_weights_))
    assert PILHasher(n_bits=32).streamed_arrays() == []  # unfitted: nothing to stream
