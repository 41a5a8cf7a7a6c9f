"""``prodampi bench learn``: the command runs and writes its fields; the paper-scale projection's arithmetic.

No timing assertions: the figures are only checked to be positive and finite."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from prodampi.stages.learn_bench import PAPER_JOB, _summarise, project
from prodampi.testing.mpi import job_env

REPO = Path(__file__).resolve().parents[2]

FIELDS = ("member_epochs_per_s", "s_per_member_epoch", "ms_per_step", "peak_rss_mb", "ratio_to_single",
          "core_s_per_member_epoch", "wall_s", "cpu_s", "cpu_share",
          "cpu_s_per_member_epoch")


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_quick_run_writes_every_field(tmp_path):
    out = tmp_path / "out.json"
    r = subprocess.run([sys.executable, "-m", "prodampi", "bench", "learn", "--quick", "--json", str(out),
                        "--configs", "single,stacked"], capture_output=True, text=True, cwd=tmp_path,
                       env=job_env(REPO, MKL_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    names = [x["config"] for x in d["results"]]
    assert names == ["single", "stacked-2", "stacked-4", "stacked-8"]
    for x in d["results"]:
        assert "error" not in x
        for f in FIELDS:
            assert _positive(x[f]), (x["config"], f, x.get(f))
        assert x["n_train"] == 256 and x["epochs"] == 1 and x["cores"] == 1
        assert x["steps_per_epoch"] == 8  # ceil(256 / 32)
        m = x["members_per_process"]
        assert x["member_epochs"] == m * 1
        assert x["member_epochs_per_s"] == pytest.approx(m / x["wall_s"])
    assert d["results"][0]["ratio_to_single"] == pytest.approx(1.0)
    p = d["projection"]
    assert p["fastest_cpu"] in names
    assert set(p["per_config"]) == set(names)
    for v in p["per_config"].values():
        assert all(_positive(h) for h in v["core_hours"] + v["wall_hours"])
    assert d["gpu"].startswith("not measured") or d["gpu"] == "measured"
    assert "paper-scale job" in r.stdout and "single" in r.stdout


def test_projection_arithmetic_by_hand():
    res = [
        {"config": "single", "device": "cpu", "cores": 1, "member_epochs_per_s": 0.5,  # 2 core-s / member-epoch
         "cpu_s_per_member_epoch": 1.5},
        {"config": "stacked-4", "device": "cpu", "cores": 1, "member_epochs_per_s": 1.6},  # 0.625
        {"config": "groups-of-1", "device": "cpu", "cores": 2, "member_epochs_per_s": 0.9},  # 2.222...
        {"config": "ddp-2", "device": "cpu", "cores": 2, "error": "exit 1: boom"},
        {"config": "single", "device": "cuda", "cores": 1, "member_epochs_per_s": 100.0},  # GPU: not "fastest CPU"
    ]
    p = project(res, n_train=6_000)
    scale = 54_000 / 6_000  # 9
    lo, hi = 2 * 210 * 1201, 2 * 210 * 6000  # 504,420 and 2,520,000 member-epochs
    assert p["member_epochs"] == [lo, hi] and p["rows_scale"] == pytest.approx(9.0)
    assert set(p["per_config"]) == {"single", "stacked-4", "groups-of-1", "single@cuda"}
    s = p["per_config"]["single"]
    assert s["core_s_per_member_epoch"] == pytest.approx(2.0 * scale)
    assert s["core_hours"] == pytest.approx([18.0 * lo / 3600, 18.0 * hi / 3600])  # 2,522.1 and 12,600 core-h
    assert s["core_hours"][1] == pytest.approx(12_600.0)
    assert s["cpu_core_hours"] == pytest.approx([1.5 * 9 * lo / 3600, 9_450.0])
    assert p["per_config"]["stacked-4"]["cpu_core_hours"] is None
    g = p["per_config"]["groups-of-1"]
    assert g["core_s_per_member_epoch"] == pytest.approx(2 / 0.9 * 9)  # 20 core-s
    assert g["core_hours"][0] == pytest.approx(20.0 * lo / 3600)
    assert g["wall_hours"][0] == pytest.approx(10.0 * lo / 3600)  # on 2 cores
    st = p["per_config"]["stacked-4"]
    assert st["core_hours"][1] == pytest.approx(0.625 * 9 * hi / 3600)  # 3,937.5 core-h
    assert st["core_hours"][1] == pytest.approx(3_937.5)
    assert p["fastest_cpu"] == "stacked-4"
    assert p["job"] == PAPER_JOB
    # another job: all of it scales linearly
    job = {**PAPER_JOB, "train_rows": 12_000, "members_per_model": 10, "models": 1, "epochs_min": 100,
           "epochs_max": 200}
    q = project(res[:1], n_train=6_000, job=job)
    assert q["per_config"]["single"]["core_hours"] == pytest.approx([2 * 2 * 1000 / 3600, 2 * 2 * 2000 / 3600])


def test_summary_of_mpi_configurations():
    """The job's totals: member-parallel ranks add their members; DDP replicas share one member."""
    run = {"members": 2, "epochs": 3, "n_train": 100, "n_val": 11, "wall_s": 6.0, "cpu_s": 5.0, "step_s": 4.8,
           "steps": 12, "device": "cpu", "peak_rss_mb": 300.0}
    slow = {**run, "wall_s": 8.0, "step_s": 6.0, "peak_rss_mb": 320.0}
    g = _summarise("groups-of-1-stacked-2", [run, slow], cores=2, ranks=2)
    assert g["member_epochs"] == 12 and g["wall_s"] == 8.0  # the slowest rank
    assert g["member_epochs_per_s"] == pytest.approx(1.5)
    assert g["core_s_per_member_epoch"] == pytest.approx(2 * 8.0 / 12)
    assert g["ms_per_step"] == pytest.approx(1e3 * 6.0 / 12)
    assert g["cpu_s_per_member_epoch"] == pytest.approx(10.0 / 12)
    assert g["cpu_share"] == pytest.approx(10.0 / (2 * 8.0))
    assert g["peak_rss_mb"] == 320.0 and g["peak_rss_mb_total"] == 620.0
    d = _summarise("ddp-2", [{**run, "members": 1}, {**slow, "members": 1}], cores=2, ranks=2)
    assert d["member_epochs"] == 3 and d["member_epochs_per_s"] == pytest.approx(3 / 8.0)
