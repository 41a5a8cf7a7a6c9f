"""Parameter-recovery scoring (prodampi.inference.recovery) and its report files (prodampi.stages.assimilate_report).

References: scipy.stats.pearsonr for r, a full recomputation for the other metrics, the binomial error of a
calibrated Gaussian's 90 % interval for coverage, the synthetic world's design table for the identifiable set.
"""

from __future__ import annotations

import csv
import math
import struct

import numpy as np
import pytest
from scipy import stats

from prodampi.inference import recovery as rc
from prodampi.soil import get_model

MODELS = ("clm5", "compas")


def _gauss_posteriors(rng, truth, sd, calibrated=True):
    """Per-site Gaussian posteriors N(mean, sd²) with truth ~ N(mean, sd²): mean = truth + sd * noise."""
    mean = truth + sd * rng.standard_normal(truth.shape) if calibrated else truth.copy()
    z = stats.norm.ppf(0.95)
    return mean, mean - z * sd, mean + z * sd


def _rows_by_name(rows):
    return {r["name"]: r for r in rows}


# --------------------------------------------------------------------------------------------- metrics


def test_perfect_recovery():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.95, (300, 4))
    sd = np.full_like(truth, 0.01)
    rows = rc.score_recovery(truth, truth, truth - 0.02, truth + 0.02, sd, list("abcd"))
    for r in rows:
        assert r["n"] == 300
        assert r["r"] == pytest.approx(1.0, abs=1e-12)
        assert r["r2"] == pytest.approx(1.0, abs=1e-12)
        assert r["rmse"] == pytest.approx(0.0, abs=1e-15)
        assert r["bias"] == pytest.approx(0.0, abs=1e-15)
        assert r["coverage90"] == 1.0
        assert r["sd_ratio"] == pytest.approx(np.std(truth[:, r["index"]], ddof=1) / 0.01, rel=1e-12)
        assert r["contraction"] == pytest.approx(1 - 1e-4 * 12, rel=1e-12)


def test_pure_noise_has_no_correlation_and_matches_scipy():
    rng = np.random.default_rng(1)
    s, p = 2000, 6
    truth = rng.uniform(0, 1, (s, p))
    mean = rng.uniform(0, 1, (s, p))
    sd = np.full_like(truth, 0.29)
    rows = rc.score_recovery(truth, mean, mean - 0.47, mean + 0.47, sd, [f"p{i}" for i in range(p)])
    for r in rows:
        j = r["index"]
        assert abs(r["r"]) < 4 / math.sqrt(s)
        assert r["r"] == pytest.approx(stats.pearsonr(truth[:, j], mean[:, j]).statistic, abs=1e-12)
        assert r["r2"] < -0.5  # two independent U(0,1): 1 - 2 var / var = -1 in expectation
        err = mean[:, j] - truth[:, j]
        assert r["rmse"] == pytest.approx(math.sqrt(np.mean(err**2)), rel=1e-12)
        assert r["bias"] == pytest.approx(np.mean(err), abs=1e-14)
        assert r["r2"] == pytest.approx(1 - np.mean(err**2) / np.var(truth[:, j]), rel=1e-12)


def test_r2_of_the_least_squares_line_is_r_squared():
    """For the OLS prediction of truth from some predictor x, 1 - SSE/SST = corr(x, truth)²."""
    rng = np.random.default_rng(2)
    truth = rng.uniform(0, 1, (500, 1))
    x = truth[:, 0] + 0.3 * rng.standard_normal(500)
    b, a = np.polyfit(x, truth[:, 0], 1)
    mean = (a + b * x)[:, None]
    (r,) = rc.score_recovery(truth, mean, mean - 0.1, mean + 0.1, np.full_like(mean, 0.06), ["x"])
    assert r["r2"] == pytest.approx(r["r"] ** 2, rel=1e-10)
    assert r["r"] == pytest.approx(np.corrcoef(x, truth[:, 0])[0, 1], abs=1e-12)


def test_constant_truth_gives_nan_r_but_finite_rmse():
    rng = np.random.default_rng(3)
    s = 400
    truth = np.column_stack([np.full(s, 0.5), rng.uniform(0, 1, s)])
    mean = np.column_stack([0.5 + 0.05 * rng.standard_normal(s), rng.uniform(0, 1, s)])
    sd = np.full_like(truth, 0.1)
    rows = rc.score_recovery(truth, mean, mean - 0.2, mean + 0.2, sd, ["const", "free"])
    c = rows[0]
    assert math.isnan(c["r"]) and math.isnan(c["r2"])
    assert c["rmse"] == pytest.approx(math.sqrt(np.mean((mean[:, 0] - 0.5) ** 2)), rel=1e-12)
    assert math.isfinite(c["rmse"]) and math.isfinite(c["coverage90"])
    assert c["truth_sd"] == 0.0 and c["sd_ratio"] == 0.0
    assert math.isfinite(rows[1]["r"])
    # a constant posterior mean with varying truth: r undefined too, R² defined (and <= 0)
    (k,) = rc.score_recovery(truth[:, 1:], np.full((s, 1), 0.5), np.zeros((s, 1)), np.ones((s, 1)),
                             np.full((s, 1), 0.29), ["k"])
    assert math.isnan(k["r"]) and k["r2"] <= 0.0


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_coverage_of_a_calibrated_gaussian_is_ninety_percent(seed):
    rng = np.random.default_rng(seed)
    s, p = 4000, 3
    truth = rng.uniform(0.2, 0.8, (s, p))
    sd = rng.uniform(0.02, 0.1, (s, p))
    mean, q05, q95 = _gauss_posteriors(rng, truth, sd)
    rows = rc.score_recovery(truth, mean, q05, q95, sd, ["a", "b", "c"])
    tol = 3.5 * math.sqrt(0.9 * 0.1 / s)  # binomial SE of a 90 % coverage over s sites
    for r in rows:
        assert abs(r["coverage90"] - 0.9) < tol
    # an over-confident posterior (SD halved) covers much less: the metric can fail
    rows_bad = rc.score_recovery(truth, mean, mean - 0.5 * (mean - q05), mean + 0.5 * (q95 - mean), sd / 2,
                                 ["a", "b", "c"])
    for r in rows_bad:
        cover = 2 * stats.norm.cdf(0.5 * stats.norm.ppf(0.95)) - 1  # ~0.59
        assert abs(r["coverage90"] - cover) < tol


def test_sd_ratio_and_contraction_recomputed():
    rng = np.random.default_rng(7)
    truth = rng.uniform(0, 1, (250, 2))
    sd = rng.uniform(0.05, 0.2, (250, 2))
    mean, q05, q95 = _gauss_posteriors(rng, truth, sd)
    rows = rc.score_recovery(truth, mean, q05, q95, sd, ["a", "b"])
    for r in rows:
        j = r["index"]
        assert r["truth_sd"] == pytest.approx(np.std(truth[:, j], ddof=1), rel=1e-12)
        assert r["post_sd_mean"] == pytest.approx(np.mean(sd[:, j]), rel=1e-12)
        assert r["sd_ratio"] == pytest.approx(np.std(truth[:, j], ddof=1) / np.mean(sd[:, j]), rel=1e-12)
        assert r["contraction"] == pytest.approx(1 - np.mean(sd[:, j] ** 2) * 12, rel=1e-12)


def test_mask_and_non_finite_sites_are_left_out():
    rng = np.random.default_rng(8)
    s = 300
    truth = rng.uniform(0, 1, (s, 2))
    sd = np.full_like(truth, 0.05)
    mean, q05, q95 = _gauss_posteriors(rng, truth, sd)
    mean[3, 0] = np.nan
    q95[7, 0] = np.inf
    sd[11, 1] = np.nan
    mask = np.ones(s, bool)
    mask[:50] = False
    rows = rc.score_recovery(truth, mean, q05, q95, sd, ["a", "b"], mask=mask)
    assert rows[0]["n"] == 250 and rows[1]["n"] == 250  # the bad sites are all inside the masked block
    keep = slice(50, None)
    ref = rc.score_recovery(truth[keep], mean[keep], q05[keep], q95[keep], sd[keep], ["a", "b"])
    for a, b in zip(rows, ref, strict=True):
        assert {k: a[k] for k in rc.METRICS} == {k: b[k] for k in rc.METRICS}
    rows = rc.score_recovery(truth, mean, q05, q95, sd, ["a", "b"])
    assert rows[0]["n"] == s - 2 and rows[1]["n"] == s - 1
    assert all(math.isfinite(rows[0][k]) for k in rc.METRICS)
    # no usable site at all
    (e,) = rc.score_recovery(np.full((5, 1), np.nan), np.zeros((5, 1)), np.zeros((5, 1)), np.ones((5, 1)),
                             np.ones((5, 1)), ["e"])
    assert e["n"] == 0 and all(math.isnan(e[k]) for k in rc.METRICS if k != "n")


def test_shape_errors():
    a = np.zeros((4, 2))
    with pytest.raises(ValueError):
        rc.score_recovery(a, np.zeros((4, 3)), a, a, a, ["x", "y"])
    with pytest.raises(ValueError):
        rc.score_recovery(a, a, a, a, a, ["x"])
    with pytest.raises(ValueError):
        rc.score_recovery(a, a, a, a, a, ["x", "y"], mask=np.ones(3, bool))


# --------------------------------------------------------------------------------------------- classes


@pytest.mark.parametrize("model", MODELS)
def test_every_parameter_has_a_class(model):
    names = get_model(model).params.names
    classes = {n: rc.classify(model, n) for n in names}
    assert set(classes.values()) <= set(rc.CLASSES)
    assert {"turnover", "transfer", "environment", "input/transport"} <= set(classes.values())
    assert [n for n, c in classes.items() if c == "unused"] == (["tau4s3"] if model == "compas" else [])
    with pytest.raises(KeyError):
        rc.classify(model, "no_such_parameter")


def test_identifiable_set_follows_the_world_design():
    from prodampi.data.truth import DESIGNS

    for model in MODELS:
        names = get_model(model).params.names
        strong = {n for n, d in DESIGNS[model].items() if d.sd_class == "strong"}
        assert set(rc.STRONG[model]) == strong
        assert set(rc.IDENTIFIABLE[model]) <= strong and set(rc.IDENTIFIABLE[model]) <= set(names)
        assert {rc.classify(model, n) for n in rc.IDENTIFIABLE[model]} <= {"turnover", "transfer"}
        assert set(rc.IDENTIFIABLE[model]) == {n for n in strong if rc.classify(model, n) in ("turnover", "transfer")}
    assert set(rc.IDENTIFIABLE["clm5"]) == {"tau4s2", "tau4s3"}
    assert set(rc.IDENTIFIABLE["compas"]) == {"tau4s4", "mm_const_decom", "mic_cue"}
    assert rc.UNUSED == {"clm5": (), "compas": ("tau4s3",)}


# --------------------------------------------------------------------------------------------- verdict


def _compas_experiment(rng, s=250, skill_ident=1.0, tau4s3_skill=False):
    names = get_model("compas").params.names
    p = len(names)
    truth = np.clip(0.5 + 0.15 * rng.standard_normal((s, p)), 0.05, 0.95)
    sd = np.full((s, p), 0.03)
    mean = truth + sd * rng.standard_normal((s, p))
    j = names.index("mic_cue")
    mean[:, j] = skill_ident * truth[:, j] + (1 - skill_ident) * rng.uniform(0, 1, s)
    k = names.index("tau4s3")
    truth[:, k] = 0.5 + 0.015 * rng.standard_normal(s)
    if tau4s3_skill:  # True: both signs of skill; "r": tracks the truth only; "sd": narrow posterior only
        mean[:, k] = (truth[:, k] + 0.002 * rng.standard_normal(s) if tau4s3_skill in (True, "r")
                      else 0.5 + 0.03 * rng.standard_normal(s))
        sd[:, k] = 0.01 if tau4s3_skill in (True, "sd") else 0.28
    else:
        mean[:, k] = 0.5 + 0.03 * rng.standard_normal(s)
        sd[:, k] = 0.28
    z = stats.norm.ppf(0.95)
    return rc.score_recovery(truth, mean, mean - z * sd, mean + z * sd, sd, names, model="compas")


def test_verdict_passes_good_recovery_and_names_failures():
    rng = np.random.default_rng(9)
    rows = _compas_experiment(rng)
    assert all(r["model"] == "compas" for r in rows)
    assert _rows_by_name(rows)["mic_cue"]["identifiable"] and not _rows_by_name(rows)["bio"]["identifiable"]
    v = rc.verdict(rows)
    assert v["ok"], v["text"]
    assert set(v["passed"]) == set(rc.IDENTIFIABLE["compas"]) and v["failed"] == []
    assert v["unused_ok"] and v["enough_sites"] and v["text"].endswith("PASS")

    v = rc.verdict(_compas_experiment(rng, skill_ident=0.0))
    assert not v["ok"] and v["failed"] == ["mic_cue"] and "mic_cue" in v["text"]

    v = rc.verdict(_compas_experiment(rng, s=150))
    assert not v["ok"] and not v["enough_sites"]


@pytest.mark.parametrize("skill", [True, "r", "sd"])
def test_verdict_flags_skill_on_the_unused_parameter(skill):
    rng = np.random.default_rng(10)
    v = rc.verdict(_compas_experiment(rng, tau4s3_skill=skill))
    assert not v["unused_ok"] and not v["ok"]
    assert "SHOWS SKILL" in v["text"]


def test_verdict_needs_a_model_and_fails_on_missing_rows():
    rows = rc.score_recovery(np.eye(4), np.eye(4), np.eye(4), np.eye(4), np.ones((4, 4)), list("abcd"))
    with pytest.raises(ValueError):
        rc.verdict(rows)
    v = rc.verdict(rows, model="clm5")
    assert not v["ok"] and set(v["failed"]) == {"tau4s2", "tau4s3"}


# --------------------------------------------------------------------------------------------- report files


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24]), len(data)


def _parse(v):
    if v in ("true", "false"):
        return v == "true"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.mark.parametrize("model", MODELS)
def test_write_recovery_files(tmp_path, model):
    pytest.importorskip("matplotlib")
    from prodampi.stages.assimilate_report import CSV_COLUMNS, recovery_markdown, write_recovery

    rng = np.random.default_rng(11)
    names = get_model(model).params.names
    s, p = 220, len(names)
    truth = rng.uniform(0.05, 0.95, (s, p))
    truth[:, 0] = 0.5  # constant column: NaN r must survive the round trip
    sd = rng.uniform(0.02, 0.2, (s, p))
    mean, q05, q95 = _gauss_posteriors(rng, truth, sd)
    mean[5, 2] = np.nan
    rows = rc.score_recovery(truth, mean, q05, q95, sd, names, model=model)
    run_dir = tmp_path / "run"
    (run_dir).mkdir()
    (run_dir / f"recovery_{model}.csv").write_text("old\n")  # replaced
    files = write_recovery(run_dir, model, "textbook", rows, truth, mean, q05, q95, names)
    assert [f.name for f in files] == [f"recovery_{model}.csv", f"recovery_{model}.png"]
    assert sorted(x.name for x in run_dir.iterdir()) == sorted(f.name for f in files)  # no temporaries left

    with open(files[0], newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        table = [{k: _parse(v) for k, v in row.items()} for row in reader]
    assert len(table) == p
    for got, want in zip(table, rows, strict=True):
        assert got["model"] == model and got["kernel"] == "textbook"
        assert got["class"] == rc.classify(model, want["name"])
        for k in ("index", "name", "identifiable") + rc.METRICS:
            assert _same(got[k], want[k]), (want["name"], k, got[k], want[k])
    assert math.isnan(table[0]["r"])

    (w, h), nbytes = _png_size(files[1])
    assert 800 <= w <= 3000 and 500 <= h <= 3000 and nbytes > 20_000

    md = recovery_markdown(rows, kernel="textbook")
    lines = md.strip().splitlines()
    table_lines = [x for x in lines if x.startswith("|")]
    assert len(table_lines) == p + 2
    for name in rc.IDENTIFIABLE[model]:
        assert f"**{name}**" in md
    if model == "compas":
        assert "tau4s3 (unused)" in md
    assert all(x.count("|") == table_lines[0].count("|") for x in table_lines)


def test_write_recovery_rejects_mismatched_inputs(tmp_path):
    from prodampi.stages.assimilate_report import write_recovery

    a = np.zeros((4, 2))
    rows = rc.score_recovery(a, a, a, a, a + 0.1, ["x", "y"])
    with pytest.raises(ValueError):
        write_recovery(tmp_path, "clm5", "paper", rows, a, a, a, a, ["y", "x"])
    with pytest.raises(ValueError):
        write_recovery(tmp_path, "clm5", "paper", rows, a, np.zeros((4, 3)), a, a, ["x", "y"])
    assert list(tmp_path.iterdir()) == []
