"""Keyed random streams: one stream per (seed, model, site, chain, attempt), position = two integers."""

from __future__ import annotations

import numpy as np

from prodampi.inference.rng import BlockStreams, attempt_keys, site_hash, stream_key, stream_keys


def _direct(key: np.ndarray, n: int) -> np.ndarray:
    raw = np.random.Philox(key=key).random_raw(n)
    return ((raw >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0 ** 53


def test_block_buffers_reproduce_the_plain_philox_stream_across_refills():
    keys = stream_keys(3, "clm5", ["p1", "p2", "p3"], [0, 1, 2])
    bs = BlockStreams(keys, block=16)
    got = [[] for _ in range(3)]
    rng = np.random.default_rng(0)
    for _ in range(40):  # uneven draws per row, crossing many block boundaries
        rows = np.flatnonzero(rng.random(3) < 0.7)
        n = int(rng.integers(1, 16))
        out = bs.uniform(rows, n)
        for j, r in enumerate(rows):
            got[r].extend(out[j])
    for r in range(3):
        ref = _direct(keys[r], len(got[r]))
        assert np.array_equal(np.array(got[r]), ref)
        assert 0.0 < ref.min() and ref.max() < 1.0


def test_position_restores_the_stream_exactly():
    keys = stream_keys(9, "compas", ["x", "y"], [0, 0])
    a = BlockStreams(keys, block=8)
    a.uniform(None, 5)
    a.uniform(np.array([1]), 7)
    b = BlockStreams(a.keys, block=8, position=a.position)
    assert np.array_equal(a.uniform(None, 6), b.uniform(None, 6))
    assert np.array_equal(a.normal(None, 3), b.normal(None, 3))


def test_keys_depend_on_every_part_and_not_on_order():
    base = stream_key(1, "clm5", "site-7", 0)
    for other in (stream_key(2, "clm5", "site-7", 0), stream_key(1, "compas", "site-7", 0),
                  stream_key(1, "clm5", "site-8", 0), stream_key(1, "clm5", "site-7", 1),
                  stream_key(1, "clm5", "site-7", 0, attempt=1)):
        assert not np.array_equal(base, other)
    ks = stream_keys(1, "clm5", ["a", "site-7", "b"], [0, 0, 0])
    assert np.array_equal(ks[1], base)  # a row's key does not depend on its neighbours
    assert site_hash("abc") == site_hash(b"abc") and site_hash(12) == site_hash("12")
    a1 = attempt_keys(ks, [0, 1, 2])
    assert np.array_equal(a1[0], ks[0]) and not np.array_equal(a1[1], ks[1])
    assert np.array_equal(attempt_keys(ks[1:2], [1]), a1[1:2])


def test_rekey_starts_the_new_stream_from_its_beginning():
    keys = stream_keys(5, "clm5", ["a", "b"], [0, 0])
    bs = BlockStreams(keys, block=8)
    bs.uniform(None, 6)
    new = attempt_keys(keys[1:], [3])
    bs.rekey(np.array([1]), new)
    assert np.array_equal(bs.uniform(np.array([1]), 4)[0], _direct(new[0], 4))
