"""Stage learn end to end under real ``mpiexec``: ``ensemble.h5`` bit-identical for 1, 2, 3 ranks, after a
SIGKILL mid-member and a re-run (finished members not retrained), after a SIGTERM (exit 75, requeue); the
funnel, the skill table and the weights files beside the ensemble."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from prodampi.testing.files import assert_same_datasets

DECK = """\
run_dir: {run}
seed: 5
models: [clm5, compas]
prepare:
  source: synthetic
  world: {{resolution_deg: 10.0, n_profiles: 80, sites: cells}}
assimilate:
  mode: paper
  chains: 2
  test_iterations: 100
  iterations: 200
  adapt_start: 100
  draws: 10
  batch_profiles: 40
  max_profiles: 40
  gelman_rubin_max: 1000.0
  nse_min: -1.0e9
learn:
  best_guess_members: 2
  bootstrap_members: 3
  epochs: {epochs}
  patience: 8
  hidden: [16, 16]
  batch_size: 8
  learning_rate: 1.0
  stack_members: 2
  holdout_fraction: 0.2
  checkpoint_every_s: 0
  checkpoint_every_epochs: 3
logging:
  progress_every_s: 0.2
"""


def _deck(tmp: Path, name: str, epochs: int = 25) -> Path:
    p = tmp / f"{name}.yaml"
    p.write_text(DECK.format(run=tmp / name, epochs=epochs))
    return p


@pytest.fixture(scope="module")
def assimilated(tmp_path_factory, job_runner):
    """inputs.h5 + posterior.h5 of the small deck, made once (copied into each run directory)."""
    tmp = tmp_path_factory.mktemp("learn")
    deck = _deck(tmp, "base")
    for stage in ("prepare", "assimilate"):
        r = job_runner.prodampi([stage, str(deck)], n=2, timeout=600)
        assert r.returncode == 0, r.stderr
    return tmp / "base"


def _run(job_runner, base: Path, tmp: Path, name: str, n: int, **env: str):
    deck = _deck(tmp, name)
    run = tmp / name
    run.mkdir(exist_ok=True)
    for f in ("inputs.h5", "posterior.h5"):
        if not (run / f).exists():
            shutil.copy(base / f, run / f)
    return deck, run, job_runner.prodampi(["learn", str(deck)], n=n, timeout=600, **env)


@pytest.fixture(scope="module")
def baseline(assimilated, tmp_path_factory, job_runner):
    tmp = tmp_path_factory.mktemp("learn1")
    _d, run, r = _run(job_runner, assimilated, tmp, "one", 1)
    assert r.returncode == 0, r.stderr
    return run


def test_ensemble_contract_funnel_skill_and_weights(baseline):
    import h5py
    import torch

    from prodampi.io.ensemble import check_ensemble, read_ensemble

    ens = baseline / "ensemble.h5"
    assert check_ensemble(ens) is None
    summ = json.loads((baseline / "learn.json").read_text())["summary"]
    for m in ("clm5", "compas"):
        f = summ["funnel"][m]
        assert f["posterior_sites"] == 40
        assert f["sites"] == f["posterior_sites"] - f["rejected_filters"] - f["nan_covariates"] - f["nan_target"]
        assert f["holdout"] + f["training"] == f["sites"] and f["holdout"] > 0
        d = read_ensemble(ens, m)
        names = list(d["member/name"])
        assert names == ["bg_01", "bg_02", "bs_001", "bs_002", "bs_003"]
        hold = d["split/holdout"].astype(bool)
        # held-out sites are in no member's training or validation rows
        assert not d["split/train_count"][:, hold].any() and not d["split/val"][:, hold].any()
        # best guess: every training site is used once, in training or validation
        bg = np.array([k == "best_guess" for k in d["member/kind"]])
        used = d["split/train_count"][bg] + d["split/val"][bg]
        assert (used[:, ~hold] == 1).all()
        # bootstrap: out of bag = never drawn
        bs = ~bg
        drawn = (d["split/train_count"][bs] > 0) | (d["split/val"][bs] > 0)
        assert np.array_equal(d["split/oob"][bs].astype(bool)[:, ~hold], ~drawn[:, ~hold])
        # the best-guess median is the median of the best-guess members' predictions
        assert np.allclose(d["best_guess/cell_median"], np.median(d["pred/cell"][bg], axis=0), atol=1e-6)
        # the stored predictions are what the weights file gives (an independent torch.nn.Sequential)
        sd = torch.load(baseline / d["member/weights_file"][0], weights_only=True)
        lin = [k for k in sd if k.endswith("weight")]
        assert len(lin) == 3 and sd[lin[0]].shape[1] == d["scaling/min"].shape[0]
        assert (d["member/epochs_run"] >= 1).all() and (d["member/epochs_run"] <= 25).all()
        assert (d["member/best_epoch"] <= d["member/epochs_run"]).all()
        assert (baseline / f"learn_skill_{m}.csv").exists()
    with h5py.File(ens, "r") as fh:
        assert fh.attrs["learn_key"]
    log = "".join(p.read_text() for p in baseline.rglob("*.log"))
    assert "learn:" in log and "epoch" in log and "units done" in log and "member-epochs/s" in log


@pytest.mark.parametrize("n", [2, 3])
def test_bit_identical_across_rank_counts(n, assimilated, baseline, tmp_path, job_runner):
    _d, run, r = _run(job_runner, assimilated, tmp_path, f"n{n}", n)
    assert r.returncode == 0, r.stderr
    assert_same_datasets(baseline / "ensemble.h5", run / "ensemble.h5")
    for p in (baseline / "ensemble.weights").rglob("*.pt"):
        assert p.read_bytes() == (run / p.relative_to(baseline)).read_bytes(), p.name


@pytest.mark.parametrize("n,fault", [(1, "kill:learn_epoch#7"), (2, "kill:learn_epoch@1#11"),
                                     (3, "kill:learn_unit_written@0#1")])
def test_sigkill_mid_member_then_rerun_is_identical(n, fault, assimilated, baseline, tmp_path, job_runner):
    _d, run, r = _run(job_runner, assimilated, tmp_path, "killed", n, PRODAMPI_FAULT=fault)
    assert r.returncode != 0
    assert not (run / "ensemble.h5").exists()
    parts = run / "learn.parts"
    finished = sorted(parts.rglob("unit_*.npz"))
    stamps = {}
    for u in finished:
        with np.load(u) as z:
            for name in z["members"]:
                w = run / "ensemble.weights" / u.parent.name / f"{name}.pt"
                stamps[w] = w.stat().st_mtime_ns
    _d, run, r = _run(job_runner, assimilated, tmp_path, "killed", n)
    assert r.returncode == 0, r.stderr
    assert_same_datasets(baseline / "ensemble.h5", run / "ensemble.h5")
    log = "".join(p.read_text() for p in (run / "logs").rglob("*.log"))
    assert f"({len(finished)} done," in log  # the re-run found the finished units ...
    assert all(w.stat().st_mtime_ns == t for w, t in stamps.items())  # ... and did not retrain them


def test_sigterm_requeues_then_resumes_identical(assimilated, baseline, tmp_path, job_runner):
    from prodampi.parallel.signals import EXIT_REQUEUE

    _d, run, r = _run(job_runner, assimilated, tmp_path, "term", 2, PRODAMPI_FAULT="term:learn_epoch@0#5")
    assert r.returncode == EXIT_REQUEUE, r.stderr
    assert list((run / "learn.parts").rglob("*.ckpt.pt")), "no checkpoint written on SIGTERM"
    _d, run, r = _run(job_runner, assimilated, tmp_path, "term", 2)
    assert r.returncode == 0, r.stderr
    assert_same_datasets(baseline / "ensemble.h5", run / "ensemble.h5")
    assert "resumed at epoch" in "".join(p.read_text() for p in (run / "logs").rglob("*.log"))


AFSP_DECK = """\
run_dir: {run}
seed: 3
models: [clm5]
prepare:
  source: table
  world: {{resolution_deg: 2.0}}
  profiles:
    format: afsp
    sites: {data}/gsif_afsp_africa_profiles/afsp_sites.csv.gz
    horizons: {data}/gsif_afsp_africa_profiles/afsp_horizons.csv.gz
  covariates:
    table: {data}/afgrid20_africa_covariates/afgrid20_covariates_20km.csv.gz
assimilate:
  chains: 2
  test_iterations: 300
  iterations: 700
  adapt_start: 300
  draws: 10
  batch_profiles: 30
  max_profiles: 30
learn:
  gelman_rubin_max: 1000000.0   # chains this short pass neither filter; train on them all the same
  nse_min: -1000000.0
  best_guess_members: 2
  bootstrap_members: 1
  epochs: 6
  hidden: [16, 16]
"""


def test_real_afsp_profiles_with_afgrid20_covariates_train_through_the_same_code(shared_data, tmp_path, job_runner):
    """The real case: AfSP profiles, AfGrid20 covariates (38 columns, 46k cells of the 20-km table)."""
    from prodampi.io.ensemble import read_ensemble

    deck = tmp_path / "afsp.yaml"
    deck.write_text(AFSP_DECK.format(run=tmp_path / "run", data=shared_data))
    for stage in ("prepare", "assimilate", "learn"):
        r = job_runner.prodampi([stage, str(deck)], n=1, timeout=600)
        assert r.returncode == 0, r.stderr
    d = read_ensemble(tmp_path / "run" / "ensemble.h5", "clm5")
    assert d["scaling/names"].size == 38 and "EVMMOD0a" in set(d["scaling/names"])
    assert d["pred/cell"].shape[1] > 40_000 and np.isfinite(d["pred/cell"]).all()
    f = json.loads((tmp_path / "run" / "learn.json").read_text())["summary"]["funnel"]["clm5"]
    assert f["posterior_sites"] == 30 and f["sites"] == d["site/row"].size > 20
    assert f["cells"] == d["cell/index"].size and f["cells"] + f["cells_nan_covariates"] == 45997


def test_ddp_groups_of_two_through_the_stage(assimilated, baseline, tmp_path, job_runner):
    """The stage's DDP path (ddp_group_size 2): it trains to the same ensemble as the member-parallel run up to
    float round-off, and a group of 2 on 3 ranks is refused with one line."""
    from prodampi.io.ensemble import read_ensemble

    deck = _deck(tmp_path, "ddp")
    deck.write_text(deck.read_text().replace("  stack_members: 2\n", "  stack_members: 2\n  ddp_group_size: 2\n"))
    run = tmp_path / "ddp"
    run.mkdir()
    for f in ("inputs.h5", "posterior.h5"):
        shutil.copy(assimilated / f, run / f)
    r = job_runner.prodampi(["learn", str(deck)], n=3, timeout=300)
    assert r.returncode == 3 and "does not divide the 3 ranks" in r.stderr, r.stderr
    r = job_runner.prodampi(["learn", str(deck)], n=2, timeout=600)
    assert r.returncode == 0, r.stderr
    for m in ("clm5", "compas"):
        a = read_ensemble(baseline / "ensemble.h5", m, names=("pred/cell", "member/best_epoch"))
        b = read_ensemble(run / "ensemble.h5", m, names=("pred/cell", "member/best_epoch"))
        assert np.array_equal(a["member/best_epoch"], b["member/best_epoch"])
        gap = float(np.abs(a["pred/cell"] - b["pred/cell"]).max())
        assert gap < 1e-4, gap
