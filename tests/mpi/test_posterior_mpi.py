"""posterior.h5 written by several ranks (mpio driver, independent row writes) equals a serial write.

Run by tools/test.sh under ``mpiexec -n 1``, ``-n 2`` and ``-n 3`` (pytest-mpi, ``--with-mpi``).
"""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest

from prodampi.io import posterior as po
from prodampi.parallel.comm import World

pytestmark = pytest.mark.mpi

S, C, D, L = 11, 3, 16, 4
PARAMS = {"clm5": ["tau4s1", "q10", "beta"], "compas": ["k_ra", "cue"]}
IDS = [f"site-{i:03d}-é" for i in range(S)]


def specs() -> dict[str, po.PosteriorSpec]:
    return {m: po.PosteriorSpec(IDS, p, np.zeros(len(p)), np.arange(1, len(p) + 1.0), C, D, L, {"kernel": "paper"})
            for m, p in PARAMS.items()}


def fields(model: str) -> dict[str, np.ndarray]:
    """Every posterior field for all sites (same on every rank: fixed seed)."""
    r = np.random.default_rng(3 + len(model))
    p = len(PARAMS[model])
    out: dict[str, np.ndarray] = {}
    shapes = {"draws": (S, C, D, p), "lp": (S, C, D), "cost": (S, C, D), "pointwise": (S, C, D, L),
              "obs_soc": (S, L), "obs_depth": (S, L), "mean": (S, p), "sd": (S, p), "mode": (S, p),
              "chain_mean": (S, C, p), "chain_ss": (S, C, p), "acceptance": (S, C), "chain_r2_legacy": (S, C),
              "chain_rmse": (S, C), "soc_mod": (S, L), "soc_sd": (S, L), "nse": (S,), "nse_legacy": (S,),
              **{k: (S, p) for k in ("gr_paper", "gr_classic", "rhat", "ess_bulk", "ess_tail")}}
    for k, shp in shapes.items():
        out[k] = r.uniform(size=shp)
    out["pointwise"][::3, :, :, 3] = np.nan
    for k, shp, hi in [("n_layers_raw", (S,), 5), ("chain_n", (S, C), 50), ("n_accepted", (S, C), 50),
                       ("n_last", (S,), 50), ("best_chain", (S,), C), ("restarts", (S, 3), 4),
                       ("n_failed_evals", (S,), 9), ("status", (S,), 6)]:
        out[k] = r.integers(0, hi, size=shp)
    out["accepted"] = r.uniform(size=(S, C, D)) < 0.4
    out["ok"] = r.uniform(size=S) < 0.8
    out["reason"] = np.array([f"reason {i} ü" * (i % 3) for i in range(S)], dtype=object)
    assert set(out) == set(po.FIELDS)
    return out


def _my_rows(rank: int, size: int) -> np.ndarray:
    """Round-robin, unsorted; with >= 2 ranks the last rank writes nothing (it must not hang anyone)."""
    if size > 1 and rank == size - 1:
        return np.zeros(0, dtype=np.int64)
    writers = max(1, size - 1)
    return np.arange(rank, S, writers)[::-1].copy()


def _contents(path) -> dict[str, tuple[str, tuple, bytes]]:
    """Every dataset: (dtype, shape, raw bytes) and its dimension scales, plus every non-reference attribute;
    a dataset with a dimension lacking a scale gets an ``@unattached`` entry (absent from a good file)."""
    out: dict[str, tuple[str, tuple, bytes]] = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = obj[()]
                out[name] = (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())
                scales = [[s.name for s in dim.values()] for dim in obj.dims]  # attached dimension scales
                out[f"{name}@dims"] = ("dims", (), repr(scales).encode())
                if obj.ndim and not obj.is_scale and not all(scales):
                    out[f"{name}@unattached"] = ("dims", (), b"")
            for k, v in obj.attrs.items():
                if k not in ("DIMENSION_LIST", "REFERENCE_LIST"):
                    out[f"{name}@{k}"] = ("attr", (), repr(v).encode())

        f.visititems(visit)
        out["@root"] = ("attr", (), repr(sorted((k, repr(v)) for k, v in f.attrs.items())).encode())
    return out


def test_ranks_writing_disjoint_rows_equal_a_serial_write(mpi_tmp_path):
    world = World()
    par, ser = mpi_tmp_path / "posterior_mpi.h5", mpi_tmp_path / "posterior_serial.h5"
    stamp = "2026-01-01T00:00:00+00:00"
    mpio = h5py.get_config().mpi
    if world.size > 1 and not mpio:
        pytest.skip("h5py without MPI")
    kw = {"driver": "mpio", "comm": world.comm} if mpio else {}
    all_fields = {m: fields(m) for m in PARAMS}
    with h5py.File(par, "w", **kw) as f:  # collective create, independent writes, collective complete
        po.create_posterior(f, specs(), {"provenance": {"n_ranks": 1}}, created_at=stamp)
        rows = _my_rows(world.rank, world.size)
        err = ""
        try:  # a failing write must not leave the other ranks in mark_complete's collective (a hang)
            for m, fl in all_fields.items():
                for part in (rows[::2], rows[1::2]):  # two calls, each non-contiguous
                    if part.size:
                        po.write_sites(f, m, part, {k: v[part] for k, v in fl.items()})
        except Exception as e:  # noqa: BLE001 - reported to every rank
            err = f"rank {world.rank}: {type(e).__name__}: {e}"
        errors = [e for e in world.allgather(err) if e]
        if not errors:
            po.mark_complete(f)
    assert not errors, errors
    problems: list[str] = []
    if world.is_root:
        try:  # an exception here must not leave the other ranks waiting in the bcast below
            problems = _compare(par, ser, stamp, all_fields)
        except Exception as e:  # noqa: BLE001 - reported to every rank
            problems = [f"rank 0: {type(e).__name__}: {e}"]
    problems = world.bcast(problems)
    assert not problems, problems


def _compare(par, ser, stamp, all_fields) -> list[str]:
    """Rank 0: write the serial reference and list every difference from the parallel file."""
    with h5py.File(ser, "w") as f:
        po.create_posterior(f, specs(), {"provenance": {"n_ranks": 1}}, created_at=stamp)
        for m, fl in all_fields.items():
            po.write_sites(f, m, np.arange(S), fl)
        po.mark_complete(f)
    a, b = _contents(par), _contents(ser)
    problems = [f"{k} differs" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    problems += [f"{k} (a dimension without its scale)" for k in a if k.endswith("@unattached")]
    why = po.check_posterior(par)
    if why is not None:
        problems.append(f"check_posterior: {why}")
    s = po.read_summary(par, "compas")
    if list(s["profile_id"]) != IDS or list(s["reason"]) != list(all_fields["compas"]["reason"]):
        problems.append("text did not round-trip")
    if len(a) < 100:
        problems.append(f"only {len(a)} entries compared")
    return problems


def test_created_at_is_rank_0s_clock_on_every_rank(mpi_tmp_path):
    """Metadata must be identical on all ranks: without ``created_at`` rank 0's time stamp is broadcast.

    Unequal attribute values under mpio do not fail loudly (the file silently keeps one rank's value), so a
    read-back comparison alone proves little; the stamp must also lie within rank 0's call."""
    import datetime as dt

    world = World()
    mpio = h5py.get_config().mpi
    if world.size > 1 and not mpio:
        pytest.skip("h5py without MPI")
    kw = {"driver": "mpio", "comm": world.comm} if mpio else {}
    path = mpi_tmp_path / "stamp.h5"
    sp = {"m": po.PosteriorSpec(["a", "b"], ["x"], [0.0], [1.0], 2, 4, 1)}

    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")

    with h5py.File(path, "w", **kw) as f:
        if world.rank == 1:
            time.sleep(1.5)  # its own clock would read a later second
        t0 = time.time()
        po.create_posterior(f, sp)
        t1 = time.time()
        mine = (str(f.attrs["created_at"]), str(f["m/posterior"].attrs["created_at"]))
    t0, t1 = world.bcast((t0, t1))
    stamps = world.allgather(mine)
    assert len(set(stamps)) == 1 and stamps[0][0] == stamps[0][1], stamps
    assert iso(t0) <= stamps[0][0] <= iso(t1), (stamps[0][0], iso(t0), iso(t1))
