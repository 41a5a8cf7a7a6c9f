"""Stage 1, **prepare**: deck -> ``<run_dir>/inputs.h5``.

Sources (``prepare.source``):

* ``synthetic`` — the embedded default world (:func:`prodampi.data.world.make_world`): grid, forcing,
  covariates, true parameters, and WoSIS-like profiles generated from the truth.  The synthetic profiles are
  screened by the same code as real ones (SOC density, pedo-transfer BD, the paper's filters).
* ``table`` — profile tables in a registered format (``prepare.profiles.format``: ISIS, AfSP, the WoSIS
  snapshots) plus optional NCSCD pedons.  Site forcing comes from a CESM2/CLM5 history file when the deck
  names one; otherwise it is **derived** (:mod:`prodampi.data.derived_forcing`): from the covariate table's
  land-surface temperature and precipitation when a covariate table is given, else from the synthetic world's
  climate at the site.  The source of every site's forcing is recorded (``forcing_source``).

The file's layout (every group, dataset, shape, dtype and unit) is the contract in :mod:`prodampi.io.inputs`;
this module only orchestrates: read the profiles (through the format registry :mod:`prodampi.io.formats`),
screen them (:mod:`prodampi.data.profiles`), find their forcing and covariates, write the contract.

Re-running with the same deck (same ``prepare`` section, seed and models) reuses the file.  The file is
written under a temporary name and renamed when complete: a crash leaves the previous file or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputDataError
from ..io.h5file import to_bytes
from ..io.inputs import FILE_NAME, FORMAT_VERSION, check_inputs, write_inputs
from ..parallel.faults import check_fault_spec, fault_point
from ..provenance import json_default, provenance
from .common import StageContext

log = logging.getLogger(__name__)

__all__ = ["FILE_NAME", "prepare_key", "run"]


def prepare_key(deck: dict) -> str:
    """Hash of everything that determines ``inputs.h5`` (the prepare section, seed, models, format)."""
    d = {"prepare": deck["prepare"], "seed": deck["seed"], "models": deck["models"], "format": FORMAT_VERSION}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def run(ctx: StageContext) -> dict[str, Any]:
    """Build (or reuse) ``inputs.h5``; returns the stage summary (identical on every rank)."""
    world, deck = ctx.world, ctx.deck
    check_fault_spec()
    path = ctx.run_dir / FILE_NAME
    key = prepare_key(deck)
    summary = None
    if world.is_root:
        summary = _existing_summary(path, key)
        if summary is not None:
            log.info("prepare: %s is up to date for this deck; reusing it", path)
            summary = {**summary, "reused": True}
        else:
            summary = _build(ctx, path, key)
    summary = world.bcast(summary)
    world.barrier()
    return summary


# ------------------------------------------------------------------------------------------------ reuse
def _existing_summary(path: Path, key: str) -> dict | None:
    why = check_inputs(path, key=key)  # complete, version, deck key and every checksum
    if why == "missing":
        return None
    if why is not None:
        log.info("prepare: %s is %s; rebuilding", path, why)
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("prepare_key") != key or not f.attrs.get("complete"):
                log.info("prepare: %s was made by another deck or is incomplete; rebuilding", path)
                return None
            return json.loads(f.attrs["summary"])
    except (OSError, KeyError, ValueError) as e:
        log.warning("prepare: cannot reuse %s (%s); rebuilding", path, e)
        return None


# ------------------------------------------------------------------------------------------------ build
def _build(ctx: StageContext, path: Path, key: str) -> dict[str, Any]:
    deck = ctx.deck
    prep = deck["prepare"]
    groups: dict[str, Any] = {}
    with ctx.timer("inputs"):
        if prep["source"] == "synthetic":
            summary = _synthetic(deck, groups)
        else:
            summary = _tables(deck, groups)
    fault_point("prepare_before_write", ctx.world.rank)
    with ctx.timer("write"):
        attrs = {
            "prepare_key": key, "source": prep["source"], "models": json.dumps(list(deck["models"])),
            "summary": json.dumps(summary, default=json_default),
            "provenance": json.dumps(provenance(deck, ctx.world.size), default=str),
        }
        write_inputs(path, groups, attrs)
    fault_point("prepare_after_write", ctx.world.rank)
    log.info("prepare: wrote %s: %d profiles kept of %d read (%d layers)", path, summary["profiles_kept"],
             summary["profiles_read"], summary["layers_kept"])
    return summary


def _require_kept(res: Any, deck: dict, extra: dict) -> None:
    if res.profiles.n_profiles == 0:
        summary = _summary(res, extra)
        err = InputDataError(_zero_kept_message(deck, summary))
        err.summary = summary  # the funnel, recorded in prepare.json by run_stage
        raise err


def _zero_kept_message(deck: dict, summary: dict) -> str:
    """One line: which input kept no profile, and the funnel (read -> rejected by reason -> kept)."""
    prep = deck["prepare"]
    if prep["source"] == "synthetic":
        src = f"{deck.get('_deck_path', 'deck')}: prepare.world (synthetic, n_profiles={prep['world']['n_profiles']})"
    else:
        src = ", ".join(summary.get("files") or [str(prep["profiles"].get("horizons"))])
    reasons = ", ".join(f"{k} {v}" for k, v in sorted((summary.get("rejected_by_reason") or {}).items())) or "none"
    return (f"{src}: no profile kept: funnel read {summary['profiles_read']} -> rejected "
            f"{summary['profiles_rejected']} ({reasons}) -> kept 0"
            + (f"; reader rejections {summary['reader_rejections']}" if "reader_rejections" in summary else ""))


def _screen(table: Any, deck: dict) -> Any:
    from ..data.profiles import screen_profiles

    s, p = deck["prepare"]["screening"], deck["prepare"]["ptf"]  # ptf.om_factor: checked by the deck
    return screen_profiles(table, min_layers_exclusive=s["min_layers"] - 1, min_max_depth_cm=s["min_bottom_cm"],
                           ptf=(p["a"], p["b"], p["c"]))


def _summary(result: Any, extra: dict) -> dict[str, Any]:
    ledger, prof = result.ledger, result.profiles
    return {
        "profiles_read": len(ledger),
        "profiles_kept": prof.n_profiles,
        "profiles_rejected": ledger.n_rejected,
        "rejected_by_reason": ledger.reason_counts(),
        "layers_kept": prof.n_layers,
        "layers_bd_from_ptf": int(np.sum(prof.bd_from_ptf)),
        **extra,
    }


def _synthetic(deck: dict, groups: dict) -> dict[str, Any]:
    from ..data.synthetic_profiles import synthetic_profile_table
    from ..data.truth import profile_truth_at_layers
    from ..data.world import make_world

    w = deck["prepare"]["world"]
    world = make_world(w["resolution_deg"], seed=deck["seed"], n_profiles=w["n_profiles"], truth=w["truth"],
                       models=tuple(deck["models"]), layers=w["layers"], noise=w["noise"], sites=w["sites"])
    arrays = world.to_arrays()
    table = synthetic_profile_table(arrays["profiles"])
    res = _screen(table, deck)
    _require_kept(res, deck, {})
    fault_point("prepare_after_screening", 0)
    prof = res.profiles
    # map kept profiles back to the world's profile rows / cells
    row_of = {pid: i for i, pid in enumerate(table.profile_id)}
    rows = np.array([row_of[p] for p in prof.profile_id], dtype=np.int64)
    p = arrays["profiles"]
    valid_cell = p["valid_cell"][rows]
    forcing = world.forcing.take(valid_cell)
    groups["profiles"] = prof.to_arrays()
    groups["profiles_truth"] = profile_truth_at_layers(p, rows, prof)
    groups["ledger"] = res.ledger.to_arrays()
    ok, reasons = forcing.check()
    groups["sites"] = {
        "forcing": forcing.as_dict(),
        "covariates": world.covariates[p["land_cell"][rows]],
        "covariate_names": to_bytes(arrays["covariates"]["names"]),
        "cell": valid_cell,
        "forcing_ok": ok.astype(np.uint8),
        "forcing_reason": to_bytes(reasons),
        "forcing_source": to_bytes(["synthetic"] * prof.n_profiles),
    }
    groups["grid"] = {k: v for k, v in arrays.items() if k not in ("profiles", "attrs")}
    groups["grid"]["attrs_json"] = np.bytes_(json.dumps(arrays["attrs"], default=json_default))
    return _summary(res, {
        "source": "synthetic",
        "resolution_deg": w["resolution_deg"],
        "truth": w["truth"],
        "grid_cells_land": int(world.cell_id.size),
        "grid_cells_valid": int(world.n_valid),
        "sites_bad_forcing": int((~ok).sum()),
        "forcing_source": {"synthetic": prof.n_profiles},
    })


def _tables(deck: dict, groups: dict) -> dict[str, Any]:
    from ..data.derived_forcing import forcing_from_covariates, forcing_from_world_climate
    from ..data.profiles import Profiles, ScreeningLedger, ScreeningResult
    from ..io.cesm2 import read_cesm2_forcing
    from ..io.covariate_grid import read_covariate_grid
    from ..io.formats import get_format
    from ..io.ncscd import read_ncscd_pedons

    prep = deck["prepare"]
    pr = prep["profiles"]
    table = get_format(pr["format"]).load()(pr)
    n_reader_rejections = len(table.rejections)
    fault_point("prepare_after_read", 0)
    res = _screen(table, deck)
    if pr["ncscd"]:
        nc = _screen(read_ncscd_pedons(pr["ncscd"]), deck)
        res = ScreeningResult(Profiles.concatenate([res.profiles, nc.profiles]),
                              ScreeningLedger.concatenate([res.ledger, nc.ledger]))
    _require_kept(res, deck, {"files": list(table.files), "reader_rejections": n_reader_rejections})
    fault_point("prepare_after_screening", 0)
    prof = res.profiles
    lat, lon = prof.lat, prof.lon

    cov_names: list[str] = []
    site_cov = np.zeros((prof.n_profiles, 0))
    grid_group: dict[str, Any] = {}
    cov = None
    if prep["covariates"]["table"]:
        cov = read_covariate_grid(prep["covariates"]["table"])
        cov_names = list(cov.names)
        site_cov = cov.at_sites(lat, lon, max_distance_km=50.0)

    if prep["forcing"]["cesm2_history"]:
        forcing = read_cesm2_forcing(prep["forcing"]["cesm2_history"], lat, lon)
        source = np.array(["cesm2"] * prof.n_profiles)
    elif cov is not None:
        forcing = forcing_from_covariates(lat, site_cov, cov_names)
        source = np.array(["derived:covariates"] * prof.n_profiles)
    else:
        from ..data.world import synthetic_land_climate

        climate = synthetic_land_climate(prep["world"]["resolution_deg"], seed=deck["seed"])
        forcing, _cells, wcov, wnames = forcing_from_world_climate(lat, lon, climate)
        source = np.array(["derived:synthetic-climate"] * prof.n_profiles)
        site_cov, cov_names = wcov, wnames
    if cov is not None:
        grid_forcing = forcing_from_covariates(cov.lat, cov.values, cov_names)
        grid_group = {"cells": {"lat": cov.lat, "lon": cov.lon, "covariates": cov.values,
                                "covariate_names": to_bytes(cov_names), "covariate_units": to_bytes(cov.units)},
                      "forcing": grid_forcing.as_dict(),
                      "attrs_json": np.bytes_(json.dumps({"grid": "covariate table cells",
                                                          "forcing_source": "derived:covariates"}))}
    ok, reasons = forcing.check()
    groups["profiles"] = prof.to_arrays()
    groups["ledger"] = res.ledger.to_arrays()
    groups["sites"] = {"forcing": forcing.as_dict(), "covariates": site_cov, "covariate_names": to_bytes(cov_names),
                       "forcing_ok": ok.astype(np.uint8), "forcing_reason": to_bytes(reasons),
                       "forcing_source": to_bytes(source)}
    if grid_group:
        groups["grid"] = grid_group
    src_counts = {s: int(c) for s, c in zip(*np.unique(source, return_counts=True))} if source.size else {}
    return _summary(res, {
        "source": "table",
        "format": pr["format"],
        "files": list(table.files),
        "reader_rejections": n_reader_rejections,
        "sites_bad_forcing": int((~ok).sum()),
        "forcing_source": src_counts,
        "grid_cells": int(cov.n_cells) if cov is not None else 0,
        "ledger_accounts_for_all": not res.ledger.unaccounted(table.input_profile_ids),
    })
