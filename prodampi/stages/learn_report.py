"""Stage **learn**'s skill tables: how well the ensemble predicts, per parameter (``learn_skill_<model>.csv``).

Per parameter, Pearson r of

* ``fit``: the best-guess median vs the training target (the posterior means) at the training sites;
* ``holdout``: the best-guess median vs the posterior means at the held-out sites (``holdout_fraction``);
* ``oob``: the bootstrap members' median over the members for which the site is out of bag, vs the target;

and, on the synthetic world (the sites' cells carry true parameters), the same predictions against the
**true** parameters, next to the posterior means' own correlation with the truth on the same sites.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-D arrays over the pairs where both are finite (NaN with < 3 pairs or no spread)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _oob_median(pred: np.ndarray, oob: np.ndarray) -> np.ndarray:
    """(S, P) median over the members for which each site is out of bag (NaN where none)."""
    p = np.where(oob[:, :, None].astype(bool), pred.astype(np.float64), np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(p, axis=0)


def skill_tables(run_dir: Path, model: str, ens: Any, inp: dict, names: list[str]) -> dict[str, Any]:
    """Write ``learn_skill_<model>.csv``; return the summary (per parameter r by evaluation set)."""
    kind = np.asarray(ens.member_kind).astype(str)
    bg = kind == "best_guess"
    pred = np.asarray(ens.pred_site, np.float64)
    med = np.median(pred[bg], axis=0)
    target = np.asarray(ens.site_target, np.float64)
    hold = np.asarray(ens.holdout).astype(bool)
    train = ~hold
    truth = None
    grid = inp.get("grid") or {}
    tg = (grid.get("truth") or {}).get(f"u_{model}")
    if tg is not None and "cell" in inp["sites"]:
        cell = np.asarray(inp["sites"]["cell"])[np.asarray(ens.site_row)]
        truth = np.asarray(tg, np.float64)[cell]
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {"fit": (med, train)}
    if hold.any():
        sets["holdout"] = (med, hold)
    bs = ~bg
    if bs.any():
        oob = np.asarray(ens.oob)[bs]
        sets["oob"] = (_oob_median(pred[bs], oob), oob.any(axis=0))
    rows = []
    out: dict[str, Any] = {}
    for sname, (p, mask) in sets.items():
        tab = {}
        for j, name in enumerate(names):
            rec = {"n": int(mask.sum()), "r_pred_vs_target": pearson(p[mask, j], target[mask, j])}
            if truth is not None:
                rec["r_pred_vs_truth"] = pearson(p[mask, j], truth[mask, j])
                rec["r_target_vs_truth"] = pearson(target[mask, j], truth[mask, j])
            tab[name] = rec
            rows.append({"set": sname, "param": name, **rec})
        out[sname] = tab
    path = Path(run_dir) / f"learn_skill_{model}.csv"
    cols = ["set", "param", "n", "r_pred_vs_target"] + (["r_pred_vs_truth", "r_target_vs_truth"]
                                                         if truth is not None else [])
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(path)
    log.info("learn: skill of %s written to %s", model, path.name)
    return out
