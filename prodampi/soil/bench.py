"""Throughput benchmark of the soil models' steady-state solvers (fast batched path vs dense reference).

For each registered model (:data:`prodampi.soil.MODELS`, configured by a preset, default ``paper``) and batch
size ``B``: a synthetic forcing for ``B`` sites (:func:`prodampi.testing.forcing.random_forcing`, the
generator the tests use, without zero-input sites) and ``B`` random parameter vectors (uniform in normalized
space) are drawn, the model is prepared once (not timed), and

* ``evals_per_s``: ``B`` / best CPU time of one ``steady_state`` call (steady-state evaluations per second
  per core; CPU time of this process is used so that the figure is meaningful on a shared machine, the
  wall-clock figure is reported too as ``evals_per_s_wall``);
* ``dense_evals_per_s``: items per second of ``steady_state_reference`` (per-item dense LAPACK path),
  measured once per model on a small sample and reported with every batch size;
* ``speedup``: ``evals_per_s / dense_evals_per_s``;
* ``peak_mb``: peak memory (MiB) traced by :mod:`tracemalloc` during one fast call at that batch size on a
  fresh model instance (so buffers a model keeps between calls are included; the prepared per-site
  constants are not).

Everything runs in this process on one core (the fast path uses no BLAS; run with ``OMP_NUM_THREADS=1
OPENBLAS_NUM_THREADS=1``, as ``tools/bench_models.py`` does, so that the dense LAPACK path uses one thread
too).  Usage::

    python -m prodampi.soil.bench --quick --json
    python tools/bench_models.py --models clm5 --batch-sizes 1,64,4096 --preset textbook
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from collections.abc import Sequence

import numpy as np

__all__ = ["run_bench", "main"]


def _best_time(fn, min_time: float, min_repeats: int = 3, max_repeats: int = 200) -> tuple[float, float]:
    """Best CPU and best wall time (s) of ``fn()`` over repeats lasting at least ``min_time`` s of CPU."""
    best_cpu = best_wall = np.inf
    total = 0.0
    n = 0
    while n < min_repeats or (total < min_time and n < max_repeats):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        dc = time.process_time() - c
        best_cpu = min(best_cpu, dc)
        best_wall = min(best_wall, dt)
        total += dc
        n += 1
    return best_cpu, best_wall


def _forcing(rng: np.random.Generator, n_sites: int):
    from ..testing.forcing import random_forcing

    return random_forcing(rng, n_sites, zero_input_frac=0.0)


def _bench_model(name: str, batch_sizes: Sequence[int], quick: bool, seed: int, preset: str = "paper") -> dict:
    from . import get_model

    model = get_model(name, preset)
    table = model.params
    rng = np.random.default_rng(seed)
    min_time = 0.2 if quick else 1.0
    n_dense = 4 if quick else 20
    out: dict = {}
    # dense reference rate, once per model, on a small sample
    forc_d = _forcing(rng, n_dense)
    theta_d = table.to_physical(rng.uniform(0.05, 0.95, (n_dense, len(table))))
    model.steady_state_reference(theta_d[:1], forc_d.take(slice(0, 1)))  # warm-up (imports)
    t_dense, _ = _best_time(lambda: model.steady_state_reference(theta_d, forc_d), min_time, min_repeats=2)
    dense_rate = n_dense / t_dense
    for b in batch_sizes:
        forc = _forcing(rng, b)
        theta = table.to_physical(rng.uniform(0.05, 0.95, (b, len(table))))
        prep = model.prepare(forc)
        model.steady_state(theta, prep)  # warm-up
        t, t_wall = _best_time(lambda: model.steady_state(theta, prep), min_time)  # noqa: B023
        fresh = get_model(name, preset)  # a new instance, so that scratch buffers kept by the model are counted
        tracemalloc.start()
        fresh.steady_state(theta, prep)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rate = b / t
        out[int(b)] = {
            "evals_per_s": float(rate),
            "dense_evals_per_s": float(dense_rate),
            "speedup": float(rate / dense_rate),
            "peak_mb": float(peak / 2**20),
            "seconds_per_call": float(t),
            "evals_per_s_wall": float(b / t_wall),
        }
    return out


def run_bench(models: Sequence[str] = ("clm5", "compas"), batch_sizes: Sequence[int] = (1, 64, 4096),
              quick: bool = False, seed: int = 0, preset: str = "paper") -> dict:
    """Measure steady-state throughput of each model (see the module docstring).

    Parameters
    ----------
    models : sequence of str
        Registered model names (:data:`prodampi.soil.MODELS`).
    batch_sizes : sequence of int
        Batch sizes ``B`` (sites = parameter vectors = B).
    quick : bool
        Shorter timing loops and a smaller dense sample (whole run well under a minute).
    seed : int
        Seed of the synthetic forcing and parameters.
    preset : str
        Model preset (:data:`prodampi.soil.PRESETS`).

    Returns
    -------
    dict
        ``{model: {B: {"evals_per_s", "dense_evals_per_s", "speedup", "peak_mb", "seconds_per_call",
        "evals_per_s_wall"}}}`` (rates per second of CPU time; ``seconds_per_call`` is CPU time);
        a model that cannot be imported or fails maps to ``{"error": message}``.
    """
    result: dict = {}
    for name in models:
        try:
            result[name] = _bench_model(name, batch_sizes, quick, seed, preset)
        except Exception as exc:  # report and go on with the other models
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


def _format(result: dict) -> str:
    lines = [f"{'model':8s} {'B':>6s} {'evals/s':>12s} {'dense/s':>10s} {'speedup':>9s} {'peak MiB':>9s}"]
    for name, per in result.items():
        if "error" in per:
            lines.append(f"{name:8s} error: {per['error']}")
            continue
        for b, r in per.items():
            lines.append(f"{name:8s} {b:6d} {r['evals_per_s']:12.0f} {r['dense_evals_per_s']:10.1f} "
                         f"{r['speedup']:9.0f} {r['peak_mb']:9.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m prodampi.soil.bench [--quick] [--json] [--models a,b] [--batch-sizes]``."""
    from . import MODELS, PRESETS

    ap = argparse.ArgumentParser(prog="prodampi.soil.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated model names (default: all)")
    ap.add_argument("--batch-sizes", default="1,64,4096", help="comma-separated batch sizes")
    ap.add_argument("--quick", action="store_true", help="short run (< 1 minute)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="paper", choices=PRESETS, help="model preset (default: paper)")
    a = ap.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    sizes = [int(b) for b in a.batch_sizes.split(",") if b]
    res = run_bench(models, sizes, quick=a.quick, seed=a.seed, preset=a.preset)
    print(json.dumps(res, indent=2) if a.json else _format(res))
    return 0 if all("error" not in v for v in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
