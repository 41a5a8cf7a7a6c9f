"""``prodampi bench learn``: training throughput of the learn stage (member-epochs per second) and the projected
cost of the paper-scale job.

A tool, not a kernel: unlike the rest of :mod:`prodampi.learn` it reads clocks, starts subprocesses and (in
its MPI workers only) imports mpi4py.

On synthetic data -- ``N`` training rows (``--sites``, default 4,000) plus ``round(N / 9)`` validation rows
(the 10 % validation split of ``N / 0.9`` sites), ``K = 60`` covariates uniform in [0, 1], ``P = 21`` targets
a smooth function of them in [0.05, 0.95] -- with the paper's network and settings (hidden 256-512-512-256,
dropout 0.2, batch 32, loss ``paper``, Adadelta; :class:`~prodampi.learn.train.TrainConfig` defaults), torch
threads 1 per process, each configuration runs one untimed warm-up epoch and then ``--epochs`` timed epochs
(wall clock of whole epochs: training steps + validation loss + early-stopping bookkeeping):

* ``single``: one member (M = 1) on one process;
* ``stacked-M`` (``--stack 2,4,8``): M members as one :class:`~prodampi.learn.network.StackedMLP` on one
  process; member-epochs/s = M x epochs/s;
* ``groups-of-1`` / ``groups-of-1-stacked-M``: ``mpiexec -n 2``, every rank trains its own members at the same
  time (M = 1, and the best stack M of the ``stacked`` configurations; it needs those, else M = 1 only);
  the job's total member-epochs over the slowest rank's wall time;
* ``ddp-2``: one member in a DistributedDataParallel group of the 2 ranks (gloo; each replica takes half of
  every global batch of 32; :func:`prodampi.stages.learn._ddp_groups`).

Each configuration runs in a fresh subprocess (the MPI ones under ``$PRODAMPI_MPIEXEC`` / ``mpiexec``), so its
peak resident memory (``peak_rss_mb``; MPI: the largest rank) is its own.  Reported per configuration:
member-epochs/s, seconds per member-epoch, ms per optimiser step (the training steps of an epoch only, from
the epoch's start to its last step), CPU seconds, peak RSS and the ratio to ``single``.

Projection (:func:`project`): the paper-scale job -- 60,000 sites, 54,000 training rows, 210 members per model,
2 models, between 1,201 (earliest early stop with patience 1,200) and 6,000 epochs per member -- costs, at a
configuration's ``cores / member_epochs_per_s`` core-seconds per member-epoch scaled by ``54,000 / N`` (an
epoch's cost is proportional to its rows), ``2 x 210 x epochs x that / 3,600`` core-hours; the fastest CPU
configuration is the one with the fewest core-seconds per member-epoch.  On a GPU (``torch.cuda`` available)
``single`` and ``stacked-8`` are also timed there.

Usage::

    prodampi bench learn [--sites 4000] [--epochs 2] [--stack 2,4,8] [--configs single,stacked,groups,ddp]
                         [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["PAPER_JOB", "bench_one", "main", "project"]

K_COVARIATES = 60
P_OUTPUTS = 21
QUICK = {"sites": 256, "hidden": (32, 32), "epochs": 1}
PAPER_JOB = {"sites": 60_000, "train_rows": 54_000, "members_per_model": 210, "models": 2,
             "epochs_min": 1_201, "epochs_max": 6_000}
CONFIG_FAMILIES = ("single", "stacked", "groups", "ddp")


# ------------------------------------------------------------------------------------------------ one process
def _synthetic(n_rows: int, seed: int = 0) -> tuple[Any, Any]:
    """(n_rows, K) covariates uniform in [0, 1] and (n_rows, P) targets in [0.05, 0.95] (float32 tensors)."""
    import torch

    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n_rows, K_COVARIATES))
    w = rng.normal(0.0, 1.0, (K_COVARIATES, P_OUTPUTS)) / math.sqrt(K_COVARIATES)
    y = 0.05 + 0.9 / (1.0 + np.exp(-3.0 * (x - 0.5) @ w))
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))


def _plans(m: int, n_train: int, n_val: int, first: int = 0) -> list[Any]:
    """M members on all training rows (train = rows 0..n_train-1, val = the n_val rows after them)."""
    from ..learn.train import MemberPlan

    tr = np.arange(n_train, dtype=np.int64)
    va = np.arange(n_train, n_train + n_val, dtype=np.int64)
    return [MemberPlan(name=f"m{first + i:03d}", init_seed=1000 + first + i, dropout_seed=2000 + first + i,
                       shuffle_seed=3000 + first + i, train=tr, val=va) for i in range(m)]


def _train_kwargs(group: Any, ddp: Any) -> dict[str, Any]:
    """Keyword arguments of ``train_epoch`` for a data-parallel group, as the stage passes them: this
    process's :class:`~prodampi.learn.train.Replica` in the process group ``group`` and the DDP wrapper."""
    if group is None:
        return {}
    from ..learn.ddp import replica

    return {"group": replica(group), "ddp_module": ddp}


def bench_one(m: int, n_train: int, epochs: int, quick: bool = False, device: str = "cpu", group: Any = None,
              first_member: int = 0, barrier: Any = None) -> dict[str, Any]:
    """Time one stack of ``m`` members in this process: one warm-up epoch, then ``epochs`` timed epochs.

    Parameters
    ----------
    m : members in the stack
    n_train : training rows N (validation rows: round(N / 9))
    epochs : timed epochs
    quick : tiny network (hidden 32-32)
    device : ``"cpu"`` or ``"cuda"``
    group : torch.distributed process group of a DDP group this process is a replica in (None: alone)
    first_member : index of the first member (distinct seeds on distinct ranks)
    barrier : called before the timed epochs (MPI ranks start together)

    Returns
    -------
    dict
        ``wall_s`` (timed epochs, s), ``cpu_s`` (process CPU, s), ``step_s`` (training steps only, s), ``steps``
        (optimiser steps timed), ``members``, ``epochs``, ``n_train``, ``n_val``, ``peak_rss_mb``.
    """
    import resource

    import torch

    from ..learn.train import TrainConfig, init_stack, train_epoch

    torch.set_num_threads(1)
    cfg = TrainConfig(hidden=QUICK["hidden"]) if quick else TrainConfig()
    n_val = int(round(n_train / 9))
    x, y = _synthetic(n_train + n_val)
    plans = _plans(m, n_train, n_val, first_member)
    state = init_stack(plans, cfg, K_COVARIATES, P_OUTPUTS)
    if device != "cpu":
        state.net.to(device)
        x, y = x.to(device), y.to(device)
    ddp = None
    if group is not None:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(state.net, process_group=group, broadcast_buffers=False)
    kw = _train_kwargs(group, ddp)
    last = [0.0]
    n_steps = [0]

    def on_step(_k: int) -> None:
        if device != "cpu":
            torch.cuda.synchronize()
        last[0] = time.perf_counter()
        n_steps[0] += 1

    train_epoch(state, plans, x, y, cfg, on_step=on_step, **kw)  # warm-up
    if barrier is not None:
        barrier()
    n_steps[0] = 0
    wall = step = 0.0
    c0 = time.process_time()
    for _ in range(epochs):
        t0 = time.perf_counter()
        train_epoch(state, plans, x, y, cfg, on_step=on_step, **kw)
        if device != "cpu":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        wall += t1 - t0
        step += last[0] - t0
    cpu = time.process_time() - c0
    return {"members": m, "epochs": epochs, "n_train": n_train, "n_val": n_val, "wall_s": wall, "cpu_s": cpu,
            "step_s": step, "steps": n_steps[0], "device": device,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _summarise(name: str, runs: list[dict], cores: int, ranks: int) -> dict[str, Any]:
    """One configuration's figures from its process(es)' :func:`bench_one` results."""
    wall = max(r["wall_s"] for r in runs)
    replicas = ranks if name.startswith("ddp") else 1  # ranks that train the same members
    member_epochs = sum(r["members"] * r["epochs"] for r in runs) / replicas
    steps = runs[0]["steps"]
    return {"config": name, "device": runs[0]["device"], "ranks": ranks, "cores": cores,
            "members_per_process": runs[0]["members"], "epochs": runs[0]["epochs"], "n_train": runs[0]["n_train"],
            "n_val": runs[0]["n_val"], "wall_s": wall, "cpu_s": sum(r["cpu_s"] for r in runs),
            "member_epochs": member_epochs, "member_epochs_per_s": member_epochs / wall,
            "s_per_member_epoch": wall / member_epochs,
            "core_s_per_member_epoch": cores * wall / member_epochs,
            "ms_per_step": 1e3 * max(r["step_s"] for r in runs) / max(steps, 1),
            "steps_per_epoch": steps / max(runs[0]["epochs"], 1),
            "cpu_s_per_member_epoch": sum(r["cpu_s"] for r in runs) / member_epochs,
            "cpu_share": sum(r["cpu_s"] for r in runs) / (wall * len(runs)),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "peak_rss_mb_total": sum(r["peak_rss_mb"] for r in runs)}


def _mpi_worker(kind: str, m: int, a: argparse.Namespace) -> dict[str, Any] | None:
    """Under mpiexec: ``groups`` (every rank its own stack of m) or ``ddp`` (one stack, replicas over all
    ranks).  Rank 0 returns the summary, the others None."""
    from ..parallel.comm import World

    world = World()
    group = None
    if kind == "ddp":
        from .learn import _ddp_groups

        group, _gid, _n, sub = _ddp_groups(world, world.size, "cpu")
        sub.Free()
    first = 0 if kind == "ddp" else world.rank * m
    r = bench_one(m, a.sites, a.epochs, quick=a.quick, group=group, first_member=first, barrier=world.barrier)
    runs = world.gather(r)
    if kind == "ddp":
        import torch.distributed as dist

        dist.destroy_process_group()
    if not world.is_root:
        return None
    name = (f"ddp-{world.size}" if kind == "ddp" else
            "groups-of-1" if m == 1 else f"groups-of-1-stacked-{m}")
    return _summarise(name, runs, cores=world.size, ranks=world.size)


# ------------------------------------------------------------------------------------------------ projection
def project(results: Sequence[dict], n_train: int, job: dict | None = None) -> dict[str, Any]:
    """The paper-scale job's cost at each measured configuration, and the fastest CPU configuration.

    Parameters
    ----------
    results : configurations (each with ``config``, ``device``, ``cores``, ``member_epochs_per_s``; entries
        with ``error`` are skipped)
    n_train : training rows of the measurement
    job : the job (default :data:`PAPER_JOB`)

    Returns
    -------
    dict
        ``job``, ``member_epochs`` (min, max), ``rows_scale`` (= train_rows / n_train) and ``per_config``:
        config -> ``core_s_per_member_epoch`` (at the paper's rows), ``core_hours`` (min, max), ``wall_hours``
        (min, max; on that configuration's cores), ``cpu_core_hours`` (min, max; from the process CPU clock
        instead of cores x wall: what the job costs on cores it has to itself, when the measurement shared
        them; None without ``cpu_s_per_member_epoch``); ``fastest_cpu``: the CPU configuration with the fewest
        core-seconds per member-epoch (None when none).
    """
    job = dict(PAPER_JOB if job is None else job)
    members = job["models"] * job["members_per_model"]
    me = (members * job["epochs_min"], members * job["epochs_max"])
    scale = job["train_rows"] / n_train
    per: dict[str, dict] = {}
    for r in results:
        if "error" in r or not r.get("member_epochs_per_s"):
            continue
        cs = r["cores"] / r["member_epochs_per_s"] * scale
        key = r["config"] if r.get("device", "cpu") == "cpu" else f"{r['config']}@{r['device']}"
        per[key] = {"device": r.get("device", "cpu"), "cores": r["cores"], "core_s_per_member_epoch": cs,
                    "core_hours": [cs * e / 3600.0 for e in me],
                    "cpu_core_hours": ([r["cpu_s_per_member_epoch"] * scale * e / 3600.0 for e in me]
                                       if r.get("cpu_s_per_member_epoch") else None),
                    "wall_hours": [cs * e / 3600.0 / r["cores"] for e in me]}
    cpu = [k for k, v in per.items() if v["device"] == "cpu"]
    fastest = min(cpu, key=lambda k: per[k]["core_s_per_member_epoch"]) if cpu else None
    return {"job": job, "member_epochs": list(me), "rows_scale": scale, "per_config": per, "fastest_cpu": fastest}


# ------------------------------------------------------------------------------------------------ driver
def _plan_configs(a: argparse.Namespace) -> list[str]:
    fams = [c.strip() for c in a.configs.split(",") if c.strip()]
    bad = [c for c in fams if c not in CONFIG_FAMILIES and not c.startswith("stacked-")]
    if bad:
        raise SystemExit(f"prodampi bench learn: unknown configuration(s) {', '.join(bad)} "
                         f"(choose from {', '.join(CONFIG_FAMILIES)})")
    return fams


def _run(cmd: list[str], env: dict, timeout: float) -> dict[str, Any]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {r.returncode}: {tail}"}
    return json.loads(lines[-1])


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _measure(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ..testing.mpi import find_mpiexec, job_env

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = job_env(repo, MKL_NUM_THREADS="1")
    base = [sys.executable, "-m", "prodampi.stages.learn_bench", "--sites", str(a.sites), "--epochs", str(a.epochs)]
    if a.quick:
        base.append("--quick")
    fams = _plan_configs(a)
    stacks = [int(s) for s in a.stack.split(",") if s.strip()]
    timeout = float(a.timeout)
    results: list[dict] = []
    load0 = _load()

    def add(name: str, cmd: list[str]) -> dict:
        r = _run(cmd, env, timeout)
        if "error" in r:
            r = {"config": name, **r}
        results.append(r)
        print(f"  {name}: " + (r["error"] if "error" in r else f"{r['member_epochs_per_s']:.3f} member-epochs/s"),
              file=sys.stderr, flush=True)
        return r

    if "single" in fams:
        add("single", [*base, "--one", "single:1"])
    if "stacked" in fams:
        for m in stacks:
            add(f"stacked-{m}", [*base, "--one", f"stacked:{m}"])
    mpiexec = find_mpiexec()
    stacked_ok = [r for r in results if r.get("config", "").startswith("stacked-") and "error" not in r]
    best_m = max(stacked_ok, key=lambda r: r["member_epochs_per_s"])["members_per_process"] if stacked_ok else None
    for fam in ("groups", "ddp"):
        if fam not in fams:
            continue
        if mpiexec is None:
            results.append({"config": "groups-of-1" if fam == "groups" else "ddp-2", "error": "no mpiexec found"})
            continue
        mpi = [mpiexec, "-n", "2"]
        if fam == "groups":
            add("groups-of-1", [*mpi, *base, "--one", "groups:1"])
            if best_m and best_m > 1:
                add(f"groups-of-1-stacked-{best_m}", [*mpi, *base, "--one", f"groups:{best_m}"])
        else:
            add("ddp-2", [*mpi, *base, "--one", "ddp:1"])
    gpu = bool(torch.cuda.is_available())
    if gpu:
        for m in (1, 8):
            name = "single" if m == 1 else "stacked-8"
            r = add(f"{name}@cuda", [*base, "--one", f"{'single' if m == 1 else 'stacked'}:{m}", "--device", "cuda"])
            r.setdefault("device", "cuda")
    single = next((r for r in results if r.get("config") == "single" and r.get("device", "cpu") == "cpu"
                   and "error" not in r), None)
    for r in results:
        if single is not None and "error" not in r:
            r["ratio_to_single"] = r["member_epochs_per_s"] / single["member_epochs_per_s"]
    return {"settings": {"sites": a.sites, "n_train": a.sites, "n_val": int(round(a.sites / 9)),
                         "covariates": K_COVARIATES, "outputs": P_OUTPUTS, "epochs": a.epochs, "quick": a.quick,
                         "hidden": list(QUICK["hidden"]) if a.quick else [256, 512, 512, 256], "dropout": 0.2,
                         "batch_size": 32, "loss": "paper", "torch_threads_per_process": 1,
                         "cpu_count": os.cpu_count(), "load_average_at_start": load0,
                         "load_average_at_end": _load(), "mpiexec": mpiexec},
            "results": results, "projection": project(results, a.sites),
            "gpu": "measured" if gpu else "not measured (no GPU lent)"}


def _table(out: dict[str, Any]) -> str:
    s = out["settings"]
    lines = [f"prodampi bench learn: N = {s['n_train']} training + {s['n_val']} validation rows, "
             f"K = {s['covariates']}, P = {s['outputs']}, hidden {'-'.join(map(str, s['hidden']))}, "
             f"batch {s['batch_size']}, {s['epochs']} timed epoch(s) after 1 warm-up, 1 torch thread per process",
             f"{'config':24s} {'cores':>5s} {'M/proc':>6s} {'mem-ep/s':>9s} {'s/mem-ep':>9s} {'ms/step':>8s} "
             f"{'peak MB':>8s} {'x single':>8s} {'cpu%':>5s}"]
    for r in out["results"]:
        name = r["config"] + ("" if r.get("device", "cpu") == "cpu" else f"@{r['device']}")
        if "error" in r:
            lines.append(f"{name:24s} error: {r['error']}")
            continue
        ratio = f"{r['ratio_to_single']:8.2f}" if "ratio_to_single" in r else f"{'-':>8s}"
        lines.append(f"{name:24s} {r['cores']:5d} {r['members_per_process']:6d} {r['member_epochs_per_s']:9.3f} "
                     f"{r['s_per_member_epoch']:9.3f} {r['ms_per_step']:8.2f} {r['peak_rss_mb']:8.0f} {ratio} "
                     f"{100 * r['cpu_share']:5.0f}")
    p = out["projection"]
    j = p["job"]
    lines.append(f"paper-scale job: {j['sites']:,} sites -> {j['train_rows']:,} training rows (x{p['rows_scale']:.2f} "
                 f"the rows measured), {j['members_per_model']} members x {j['models']} models, "
                 f"{j['epochs_min']:,}-{j['epochs_max']:,} epochs per member "
                 f"({p['member_epochs'][0]:,}-{p['member_epochs'][1]:,} member-epochs)")
    for k, v in p["per_config"].items():
        mark = "  <- fastest CPU" if k == p["fastest_cpu"] else ""
        lines.append(f"  {k:24s} {v['core_s_per_member_epoch']:8.1f} core-s/member-epoch  "
                     f"{v['core_hours'][0]:10,.0f} - {v['core_hours'][1]:10,.0f} core-h  "
                     f"({v['wall_hours'][0]:,.0f} - {v['wall_hours'][1]:,.0f} h on {v['cores']} core(s)); by CPU clock "
                     f"{_range(v['cpu_core_hours'])} core-h{mark}")
    lines.append(f"GPU: {out['gpu']}")
    lines.append(f"load average (1, 5, 15 min) at start {s['load_average_at_start']}, at end "
                 f"{s['load_average_at_end']} on {s['cpu_count']} cores; cpu% = process CPU / wall per process")
    return "\n".join(lines)


def _range(v: list[float] | None) -> str:
    return "-" if not v else f"{v[0]:,.0f} - {v[1]:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); each configuration runs in a fresh subprocess."""
    ap = argparse.ArgumentParser(prog="prodampi bench learn", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sites", type=int, default=None, help="training rows N (default 4000; --quick 256)")
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs (default 2; --quick 1)")
    ap.add_argument("--stack", default="2,4,8", help="stack sizes M of the stacked configurations")
    ap.add_argument("--configs", default=",".join(CONFIG_FAMILIES),
                    help="subset of single,stacked,groups,ddp (default all)")
    ap.add_argument("--quick", action="store_true", help="tiny: N=256, hidden 32-32, 1 epoch")
    ap.add_argument("--json", metavar="PATH", help="also write everything as JSON to PATH")
    ap.add_argument("--timeout", type=float, default=1800.0, help="wall-clock limit per configuration (s)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # kind:M, run in this process (or these MPI ranks)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.sites is None:
        a.sites = QUICK["sites"] if a.quick else 4000
    if a.epochs is None:
        a.epochs = QUICK["epochs"] if a.quick else 2
    if a.sites < 1 or a.epochs < 1:
        ap.error("--sites and --epochs must be >= 1")
    if a.one:
        kind, m = a.one.split(":")
        if kind in ("groups", "ddp"):
            res = _mpi_worker(kind, int(m), a)
            if res is not None:
                print(json.dumps(res), flush=True)
            return 0
        r = bench_one(int(m), a.sites, a.epochs, quick=a.quick, device=a.device)
        name = "single" if kind == "single" else f"stacked-{m}"
        print(json.dumps(_summarise(name, [r], cores=1, ranks=1)), flush=True)
        return 0
    out = _measure(a)
    print(_table(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if all("error" not in r for r in out["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
