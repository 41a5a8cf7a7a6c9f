"""Per-site summary of an assimilated batch: diagnostics, the paper's filters, status and reason.

Pure: the kernel's results (:data:`prodampi.inference.sampler.base.RESULT_FIELDS`) and the sites'
observations in, the ``summary`` fields of ``posterior.h5`` out.

Filters (paper §2.1, ``proda_nn_maps.md`` §2): a site is **converged** and used downstream when the sampler
finished, its Gelman-Rubin statistic passes and its NSE passes:

* G-R: ``mode="paper"`` uses the authors' statistic (:func:`~prodampi.inference.diagnostics.gelman_rubin_paper`,
  accepted-state moments, mismatched n) averaged over parameters, as the paper's "GR < 1.05";
  ``mode="textbook"`` uses the rank-normalised split R-hat (max over parameters).  Threshold: deck
  ``assimilate.gelman_rubin_max``.
* NSE: ``nse_definition="legacy"`` (the authors' filter: max over chains of their "R2" > nse_min, SS_tot taken
  around the modelled mean) or ``"paper"`` (Eq. 1 of the paper on the posterior modelled profile).  Default:
  legacy for the paper kernel, paper for the textbook kernel.
"""

from __future__ import annotations

import numpy as np

from . import diagnostics as dg

__all__ = ["STATUS", "STATUS_NAMES", "summarize"]

#: per-site status codes in ``summary/status`` (the reason string says more)
STATUS: dict[str, int] = {
    "converged": 0,  # passed every filter: used by learn
    "rejected_gr": 1,  # the Gelman-Rubin filter failed
    "rejected_nse": 2,  # the NSE filter failed
    "solver_failure": 3,  # the model failed at the start point (the authors' skip) or everywhere
    "bad_data": 4,  # degenerate observations or forcing
    "sampler_failure": 5,  # restarts exhausted, no acceptance, ...
    "not_run": 6,  # not assimilated (yet)
}
STATUS_NAMES: dict[int, str] = {v: k for k, v in STATUS.items()}


def summarize(results: dict[str, np.ndarray], obs: np.ndarray, pre_reason: np.ndarray, mode: str,
              gr_max: float, nse_min: float, nse_definition: str | None = None) -> dict[str, np.ndarray]:
    """Diagnostics, filters and status for the S sites of a batch.

    Parameters
    ----------
    results : dict
        The kernel's :meth:`finalize` output (S sites; sites with a ``pre_reason`` hold whatever the kernel
        produced for them and are overridden here).
    obs : (S, L) float64
        Observed SOC (g C m-3), NaN at padded layers.
    pre_reason : (S,) str
        '' or the reason a site was not sampled ("bad_data: ...", "solver_failure: ...").
    mode : {"paper", "textbook"}
    gr_max, nse_min : float
        Filter thresholds (deck ``gelman_rubin_max``, ``nse_min``).
    nse_definition : {"legacy", "paper"} or None
        None: legacy for ``paper`` mode, paper for ``textbook``.

    Returns
    -------
    dict of arrays
        ``gr_paper``, ``gr_classic``, ``rhat``, ``ess_bulk``, ``ess_tail`` (S, P); ``nse``, ``nse_legacy``
        (S,); ``status`` (S,) int8; ``reason`` (S,) object (str).
    """
    draws = np.asarray(results["draws"], dtype=np.float64)  # (S, C, D, P)
    s_n, _c, _d, p_n = draws.shape
    x = np.moveaxis(draws, 3, 1)  # (S, P, C, D): diagnostics over the last two axes
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: sites that were not sampled
        conv = dg.convergence_summary(x, prob=(0.05, 0.95), constant="nan")
        rhat, gr_classic, ess_b, ess_t = conv["rhat"], conv["rhat_classic"], conv["ess_bulk"], conv["ess_tail"]
        gr_paper = dg.gelman_rubin_paper(results["chain_mean"], results["chain_ss"], results["n_last"])
        nse_paper = dg.nse(obs, results["soc_mod"])
        nse_leg = np.nanmax(np.where(np.isfinite(results["chain_r2_legacy"]), results["chain_r2_legacy"],
                                     -np.inf), axis=1)
        nse_leg = np.where(np.isfinite(nse_leg), nse_leg, np.nan)
        gr_stat = np.nanmean(gr_paper, axis=1) if mode == "paper" else np.nanmax(rhat, axis=1)
    definition = nse_definition or ("legacy" if mode == "paper" else "paper")
    nse_used = nse_leg if definition == "legacy" else nse_paper

    status = np.full(s_n, STATUS["converged"], dtype=np.int8)
    reason = np.array([""] * s_n, dtype=object)
    ok = np.asarray(results["ok"], dtype=bool)
    kreason = np.asarray(results["reason"], dtype=object)
    for i in range(s_n):
        pr = str(pre_reason[i])
        if pr:
            kind = pr.split(":", 1)[0]
            status[i] = STATUS.get(kind, STATUS["bad_data"])
            reason[i] = pr
        elif not ok[i]:
            kr = str(kreason[i])
            kind = kr.split(":", 1)[0]
            status[i] = STATUS["solver_failure"] if kind == "solver_failure" else STATUS["sampler_failure"]
            reason[i] = kr if kind in ("solver_failure", "sampler_failure") else f"sampler_failure: {kr}"
        elif not (np.isfinite(gr_stat[i]) and gr_stat[i] <= gr_max):
            status[i] = STATUS["rejected_gr"]
            what = "mean authors' G-R" if mode == "paper" else "max rank-normalised R-hat"
            reason[i] = f"rejected_gr: {what} {gr_stat[i]:.4g} > {gr_max:g}"
        elif not (np.isfinite(nse_used[i]) and nse_used[i] > nse_min):
            status[i] = STATUS["rejected_nse"]
            reason[i] = f"rejected_nse: {definition} NSE {nse_used[i]:.4g} <= {nse_min:g}"
    del p_n
    return {"gr_paper": gr_paper, "gr_classic": gr_classic, "rhat": rhat, "ess_bulk": ess_b, "ess_tail": ess_t,
            "nse": nse_paper, "nse_legacy": nse_leg, "status": status, "reason": reason}
