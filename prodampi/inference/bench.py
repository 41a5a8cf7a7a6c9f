"""``prodampi bench assimilate``: the cost of one sampler iteration, split into model / sampler / I/O, and the
projected throughput at the paper's settings (3 chains x (20,000 + 50,000) iterations).

For each model and kernel, at a batch of ``S`` profiles (default 4,096; synthetic forcing from
:func:`prodampi.testing.forcing.random_forcing` and synthetic 6-layer observations made by the model itself
at random parameters, with 20 % noise):

* the kernel runs ``steps`` iterations in each phase of a chain (``paper``: test run, formal run before
  adaptation, formal run with the per-iteration covariance update; ``textbook``: warm-up and stored chain),
  timed with the process CPU clock; the target's ``evaluate`` is timed separately (``model_s``: the model's
  batched steady state and observation operator) so that ``sampler_s`` = step - evaluate;
* ``io_s`` per iteration: one sampler-state checkpoint write (``checkpoint_every_s`` = 300 s amortised) plus
  the batch's result file, spread over the batch's iterations;
* ``profiles_per_core_hour`` = 3,600 / (seconds per profile): paper kernel -- the chains of a site run one
  after the other, each ``n1 + n2`` steps of a batch of ``S`` sites; textbook -- all chains at once, so
  ``S x C`` rows for ``n1 + n2`` steps;
* the authors' full-history covariance: ``cov(all states 1..t)`` recomputed every iteration for
  ``t > 4,000`` (their code) is timed at several ``t`` on the same batch and integrated over the formal run,
  next to the recursive (Welford) update that prodampi uses -- the ratio is the saving;
* ``peak_rss_mb``: peak resident memory of the process for this configuration (each configuration runs in
  a fresh subprocess, so the figure is its own).

Usage::

    prodampi bench assimilate [--batch 4096] [--steps 20] [--models clm5,compas] [--kernels paper,textbook]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["bench_one", "main"]

PAPER = {"chains": 3, "test_iterations": 20_000, "iterations": 50_000, "adapt_start": 4_000}


class _TimedTarget:
    """Wraps a target; accumulates the CPU time spent in ``evaluate``."""

    def __init__(self, target) -> None:
        self.t = target
        self.n_params, self.n_sites, self.n_obs = target.n_params, target.n_sites, target.n_obs
        for k in ("obs", "n_layers_raw"):
            if hasattr(target, k):
                setattr(self, k, getattr(target, k))
        self.cpu = 0.0
        self.calls = 0
        self.items = 0

    def evaluate(self, kp, site_index):
        c = time.process_time()
        out = self.t.evaluate(kp, site_index)
        self.cpu += time.process_time() - c
        self.calls += 1
        self.items += len(site_index)
        return out


def _synthetic(model, n_sites: int, seed: int):
    from ..testing.forcing import random_forcing
    from .targets import ProfileTarget, SiteObservations

    rng = np.random.default_rng(seed)
    forc = random_forcing(rng, n_sites, zero_input_frac=0.0)
    prep = model.prepare(forc)
    depths = np.array([0.05, 0.15, 0.3, 0.5, 0.8, 1.2])
    truth = model.params.to_physical(rng.uniform(0.2, 0.8, (n_sites, len(model.params))))
    soc = model.observe(model.steady_state(truth, prep).soc, np.broadcast_to(depths, (n_sites, depths.size)))
    soc = soc * np.exp(rng.normal(0.0, 0.2, soc.shape))
    soc = np.where(np.isfinite(soc) & (soc > 0), soc, 1000.0)
    offsets = np.arange(n_sites + 1) * depths.size
    obs = SiteObservations.from_profiles(offsets, np.tile(depths, n_sites), soc.ravel(),
                                         np.ones(soc.size, dtype=bool))
    return ProfileTarget(model, prep, obs), prep


def _phase_of(kernel_name: str, state, cfg) -> str:
    """The phase most rows are in: paper ``test`` / ``formal`` / ``adapted``; textbook ``warmup`` / ``stored``."""
    arr = state.arrays
    if kernel_name == "paper":
        ph, t = arr["phase"], arr["t"]
        live = ph < 2
        if not live.any():
            return "done"
        formal = (ph == 1) & live
        if formal.sum() * 2 < live.sum():
            return "test"
        return "adapted" if np.median(t[formal]) > cfg.adapt_start else "formal"
    it = arr["it"]
    return "warmup" if np.median(it) < cfg.test_iterations else "stored"


def _timed_steps(kernel, kernel_name: str, state, target: _TimedTarget, cfg, max_steps: int,
                 per_phase: int) -> dict[str, dict]:
    """Step until every phase has ``per_phase`` timed steps (or ``max_steps``); CPU time per phase."""
    acc: dict[str, list[float]] = {}
    for _ in range(max_steps):
        ph = _phase_of(kernel_name, state, cfg)
        if ph == "done":
            break
        c0, m0 = time.process_time(), target.cpu
        state, _info = kernel.step(state, target)
        acc.setdefault(ph, []).append((time.process_time() - c0, target.cpu - m0))
        want = ("test", "formal", "adapted") if kernel_name == "paper" else ("warmup", "stored")
        if all(len(acc.get(k, [])) >= per_phase for k in want):
            break
    out = {}
    for k, v in acc.items():
        a = np.array(v[1:] if len(v) > 2 else v)  # the first step of a phase carries its set-up
        out[k] = {"steps": len(v), "step_s": float(a[:, 0].mean()), "model_s": float(a[:, 1].mean())}
    return out, state


def bench_one(model_name: str, kernel_name: str, n_sites: int, steps: int, seed: int = 0) -> dict:
    """Measure one (model, kernel) configuration in this process (see the module docstring)."""
    import resource

    from ..io.staging import write_part
    from ..soil import get_model
    from .covariance import RunningMoments
    from .rng import stream_keys
    from .sampler import SamplerConfig, get_kernel

    model = get_model(model_name)
    target, _prep = _synthetic(model, n_sites, seed)
    tt = _TimedTarget(target)
    p_n = len(model.params)
    cfg = SamplerConfig(chains=PAPER["chains"], test_iterations=PAPER["test_iterations"],
                        iterations=PAPER["iterations"], adapt_start=PAPER["adapt_start"])
    kernel = get_kernel(kernel_name)
    ids = [f"s{i}" for i in range(n_sites)]
    keys = stream_keys(seed, model_name, np.repeat(ids, cfg.chains), np.tile(np.arange(cfg.chains), n_sites))
    # a short schedule that passes through every phase in a few steps; the per-phase step costs are then
    # projected onto the paper's schedule below
    # (the paper kernel's test run must hold more distinct states than parameters for its covariance, and
    # restarts up to 4 times when it has < 50 acceptances: n1 = 150 gets it to the formal run in <= 600 steps)
    # and its formal-run covariance from the formal states only once adapt_start > P of them exist)
    n1 = max(steps, 150) if kernel_name == "paper" else steps
    n_ad = max(steps, 100) if kernel_name == "paper" else steps
    short = SamplerConfig(chains=cfg.chains, test_iterations=n1, iterations=cfg.iterations,
                          adapt_start=n_ad, draws=cfg.draws)
    rows = n_sites if kernel_name == "paper" else n_sites * cfg.chains
    state = kernel.init(short, tt, keys.reshape(n_sites, cfg.chains, 2))
    phases, state = _timed_steps(kernel, kernel_name, state, tt, short, max_steps=10 * n1 + n_ad + 4 * steps,
                                 per_phase=steps)
    # I/O: one checkpoint write of the whole state
    with tempfile.TemporaryDirectory() as d:
        c = time.perf_counter()
        write_part(Path(d) / "s.npz", state.to_arrays(), {"kind": "bench"})
        ck_s = time.perf_counter() - c
        state_mb = (Path(d) / "s.npz").stat().st_size / 2**20
    # covariance: the authors' full-history recomputation vs the recursive update, per step, at S rows
    rng = np.random.default_rng(seed)
    full = {}
    n_cov = min(rows, 512)
    for t in (2_000, 8_000):
        hist = rng.uniform(0, 1, (n_cov, t, p_n))
        c = time.process_time()
        mu = hist.mean(axis=1, keepdims=True)
        xc = hist - mu
        np.einsum("rti,rtj->rij", xc, xc) / (t - 1)
        full[t] = (time.process_time() - c) * rows / n_cov
        del hist, xc
    slope = (full[8_000] - full[2_000]) / 6_000
    t_adapt = np.arange(cfg.adapt_start + 1, cfg.iterations + 1, dtype=np.float64)
    full_cov_chain_s = float(np.sum(full[2_000] + slope * (t_adapt - 2_000)))
    mom = RunningMoments(rows, p_n)
    x = rng.uniform(0, 1, (rows, p_n))
    idx = np.arange(rows)
    c = time.process_time()
    for _ in range(5):
        mom.add(idx, x)
        mom.cov(idx)
    rec_step = (time.process_time() - c) / 5
    rec_chain_s = rec_step * t_adapt.size
    # projection at the paper's settings
    n1, n2, c_n = cfg.test_iterations, cfg.iterations, cfg.chains

    def t(ph: str, what: str = "step_s") -> float:
        return phases.get(ph, {}).get(what, float("nan"))

    if kernel_name == "paper":  # chains one after another; test run, formal before / after adapt_start
        parts = [(n1, "test"), (cfg.adapt_start, "formal"), (n2 - cfg.adapt_start, "adapted")]
        mult = c_n
    else:  # chains side by side (rows = S x C); warm-up then the stored chain
        parts = [(n1, "warmup"), (n2, "stored")]
        mult = 1
    per_batch = mult * sum(n * t(ph) for n, ph in parts)
    model_batch = mult * sum(n * t(ph, "model_s") for n, ph in parts)
    iters_batch = mult * (n1 + n2)
    io_batch = ck_s * (per_batch / 300.0) + ck_s  # checkpoints every 300 s + the result file
    per_profile = (per_batch + io_batch) / n_sites
    full_extra = c_n * (full_cov_chain_s - rec_chain_s) if kernel_name == "paper" else 0.0
    return {
        "model": model_name, "kernel": kernel_name, "batch_profiles": n_sites, "rows": rows, "steps": steps,
        "phases": phases,
        "per_iteration_s": {"model": model_batch / iters_batch, "sampler": (per_batch - model_batch) / iters_batch,
                            "io": io_batch / iters_batch},
        "model_share": model_batch / (per_batch + io_batch),
        "overhead_vs_model": (per_batch + io_batch) / model_batch - 1.0,
        "seconds_per_profile": per_profile,
        "profiles_per_core_hour": 3600.0 / per_profile,
        "checkpoint_write_s": ck_s, "checkpoint_mb": state_mb,
        "authors_full_covariance": {
            "per_chain_s_full": full_cov_chain_s, "per_chain_s_recursive": rec_chain_s,
            "ratio": full_cov_chain_s / max(rec_chain_s, 1e-12),
            "profiles_per_core_hour_with_full": 3600.0 / (per_profile + full_extra / n_sites),
        },
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); each configuration runs in a fresh subprocess."""
    ap = argparse.ArgumentParser(prog="prodampi bench assimilate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="clm5,compas")
    ap.add_argument("--kernels", default="paper,textbook")
    ap.add_argument("--batch", type=int, default=4096, help="profiles per batch (default 4096)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per phase")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # model:kernel, run in this process
    a = ap.parse_args(argv)
    if a.one:
        m, k = a.one.split(":")
        print(json.dumps(bench_one(m, k, a.batch, a.steps)))
        return 0
    results = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    for m in a.models.split(","):
        for k in a.kernels.split(","):
            r = subprocess.run([sys.executable, "-m", "prodampi.inference.bench", "--one", f"{m}:{k}",
                                "--batch", str(a.batch), "--steps", str(a.steps)],
                               capture_output=True, text=True, env=env)
            if r.returncode != 0:
                results.append({"model": m, "kernel": k, "error": r.stderr.strip().splitlines()[-1:]})
                continue
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'model':7s} {'kernel':9s} {'prof/core-h':>11s} {'model us/it':>11s} {'sampler':>8s} "
              f"{'io':>6s} {'overhead':>8s} {'full-cov prof/h':>15s} {'peak MB':>8s}")
        for r in results:
            if "error" in r:
                print(f"{r['model']:7s} {r['kernel']:9s} error: {r['error']}")
                continue
            it = r["per_iteration_s"]
            scale = 1e6 / r["rows"]
            print(f"{r['model']:7s} {r['kernel']:9s} {r['profiles_per_core_hour']:11.0f} {it['model'] * scale:11.2f} "
                  f"{it['sampler'] * scale:8.2f} {it['io'] * scale:6.3f} {100 * r['overhead_vs_model']:7.0f}% "
                  f"{r['authors_full_covariance']['profiles_per_core_hour_with_full']:15.0f} "
                  f"{r['peak_rss_mb']:8.0f}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
