"""Keyed random streams: one independent stream per (seed, model, site id, chain, attempt).

A site's chain draws the same numbers whatever rank, batch slot or restart it runs in (``conventions.md``
F.1: "RNG keyed by global location, not rank").  Each stream is NumPy's counter-based ``Philox`` bit
generator keyed by a 128-bit key derived with :class:`numpy.random.SeedSequence` from the run seed, the
model name, the site id (a profile id string, hashed), the chain index and the attempt number.

Per-iteration cost is kept at one batched draw: every row (a site's chain) owns a buffer of ``block``
uniforms, refilled from its stream a block at a time.  The position of a row in its stream is two integers
(``block`` index and ``pos`` within it), because block ``b`` is regenerated exactly by
``Philox(key, counter=b * block / 4)`` -- so the whole RNG state of a batch is the key array plus two integer
arrays, which is what a checkpoint stores.

Uniforms are open on both ends, ``u = (raw >> 11 + 0.5) 2**-53`` in (0, 1); normals are ``ndtri(u)`` (one
uniform per normal, so consumption is exact and the stream position is a plain count).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtri

__all__ = ["BlockStreams", "attempt_keys", "stream_key", "stream_keys", "site_hash"]

_TWO53 = float(2 ** 53)


def site_hash(site_id: str | bytes | int) -> int:
    """A stable 64-bit integer for a site id (profile id string or integer), independent of Python's hash seed."""
    if isinstance(site_id, (int, np.integer)):
        b = str(int(site_id)).encode()
    elif isinstance(site_id, bytes):
        b = site_id
    else:
        b = str(site_id).encode()
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little")


def _model_hash(model: str) -> int:
    return int.from_bytes(hashlib.blake2b(model.encode(), digest_size=4).digest(), "little")


def stream_key(seed: int, model: str, site_id: str | bytes | int, chain: int, attempt: int = 0) -> np.ndarray:
    """The (2,) uint64 Philox key of stream (seed, model, site, chain, attempt)."""
    ss = np.random.SeedSequence(entropy=int(seed),
                                spawn_key=(_model_hash(model), site_hash(site_id), int(chain), int(attempt)))
    return ss.generate_state(2, dtype=np.uint64)


def stream_keys(seed: int, model: str, site_ids: Sequence, chains: Sequence[int] | np.ndarray,
                attempts: Sequence[int] | np.ndarray | int = 0) -> np.ndarray:
    """Keys for many rows: ``site_ids[i]``, ``chains[i]``, ``attempts[i]`` -> (B, 2) uint64."""
    chains = np.asarray(chains, dtype=np.int64)
    att = np.broadcast_to(np.asarray(attempts, dtype=np.int64), chains.shape)
    return np.array([stream_key(seed, model, s, int(c), int(a)) for s, c, a in zip(site_ids, chains, att)],
                    dtype=np.uint64).reshape(len(chains), 2)


def attempt_keys(keys: np.ndarray, attempts: np.ndarray | Sequence[int]) -> np.ndarray:
    """Keys of later attempts of chains: ``keys`` (n, 2) uint64 of attempt 0, ``attempts`` (n,) ints.

    Attempt 0 returns the key itself; attempt ``a > 0`` a key derived from (key, a) by ``SeedSequence``, so a
    restarted chain draws fresh numbers that depend on nothing but the chain and the attempt number."""
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
    att = np.broadcast_to(np.asarray(attempts, dtype=np.int64), (keys.shape[0],))
    out = keys.copy()
    for i in np.flatnonzero(att > 0):
        ent = int(keys[i, 0]) | (int(keys[i, 1]) << 64)
        out[i] = np.random.SeedSequence(entropy=ent, spawn_key=(int(att[i]),)).generate_state(2, dtype=np.uint64)
    return out


class BlockStreams:
    """Per-row keyed streams with block buffers.

    Parameters
    ----------
    keys : (B, 2) uint64
        One Philox key per row (:func:`stream_keys`).
    block : int
        Uniforms buffered per row (a multiple of 4); memory is ``B * block * 8`` bytes.
    position : (block_index (B,), pos (B,)) or None
        Where each row is in its stream (from :attr:`position` of an earlier object); None: the start.
    """

    def __init__(self, keys: np.ndarray, block: int = 1024,
                 position: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if block % 4 or block <= 0:
            raise ValueError("block must be a positive multiple of 4")
        self.keys = np.array(keys, dtype=np.uint64).reshape(-1, 2)
        self.block = int(block)
        n = self.keys.shape[0]
        self.buf = np.empty((n, self.block), dtype=np.float64)
        if position is None:
            self.blk = np.zeros(n, dtype=np.int64)
            self.pos = np.zeros(n, dtype=np.int64)
        else:
            self.blk = np.array(position[0], dtype=np.int64).copy()
            self.pos = np.array(position[1], dtype=np.int64).copy()
        self._bg = np.random.Philox(key=np.zeros(2, dtype=np.uint64))  # one generator, re-keyed per fill
        self._zero4 = np.zeros(4, dtype=np.uint64)
        for r in range(n):
            self._fill(r)

    @property
    def n_rows(self) -> int:
        return self.keys.shape[0]

    @property
    def position(self) -> tuple[np.ndarray, np.ndarray]:
        """(block index, position in block) per row: with :attr:`keys`, the whole state."""
        return self.blk.copy(), self.pos.copy()

    def _fill(self, r: int) -> None:
        """Block ``blk[r]`` of row r's stream: ``Philox(key, counter=blk * block / 4)`` (state set, no new object)."""
        self._bg.state = {"bit_generator": "Philox",
                          "state": {"counter": np.array([self.blk[r] * (self.block // 4), 0, 0, 0], dtype=np.uint64),
                                    "key": self.keys[r].copy()},
                          "buffer": self._zero4, "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
        raw = self._bg.random_raw(self.block)
        self.buf[r] = ((raw >> np.uint64(11)).astype(np.float64) + 0.5) / _TWO53

    def rekey(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Give ``rows`` new keys (a new chain or attempt) and start them at the beginning of their stream."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.intp))
        self.keys[rows] = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
        self.blk[rows] = 0
        self.pos[rows] = 0
        for r in rows:
            self._fill(int(r))

    def uniform(self, rows: np.ndarray | None, n: int) -> np.ndarray:
        """``n`` uniforms in (0, 1) for each of ``rows`` (None: every row), consumed from their streams.

        Returns
        -------
        (len(rows), n) float64
        """
        if n > self.block:
            raise ValueError(f"cannot draw {n} > block={self.block} numbers at once")
        rows = np.arange(self.n_rows) if rows is None else np.asarray(rows, dtype=np.intp)
        if rows.size == 0:
            return np.empty((0, n))
        out = np.empty((rows.size, n))
        p = self.pos[rows]
        room = self.block - p
        short = room < n
        # rows with enough numbers left in their block: one gather
        ok = ~short
        if ok.any():
            r_ok = rows[ok]
            flat = (r_ok * self.block + p[ok])[:, None] + np.arange(n)
            out[ok] = self.buf.reshape(-1)[flat]
            self.pos[r_ok] += n
        for j in np.flatnonzero(short):  # rare: the tail of this block, then the next block
            r = int(rows[j])
            k = int(room[j])
            out[j, :k] = self.buf[r, self.pos[r]:]
            self.blk[r] += 1
            self._fill(r)
            out[j, k:] = self.buf[r, :n - k]
            self.pos[r] = n - k
        return out

    def normal(self, rows: np.ndarray | None, n: int) -> np.ndarray:
        """``n`` standard normals per row (``ndtri`` of uniforms: one uniform each)."""
        return ndtri(self.uniform(rows, n))
