"""Stage 1, **prepare**: deck -> ``<run_dir>/inputs.h5``.

Sources (``prepare.source``):

* ``synthetic`` — the embedded default world (:func:`prodampi.data.world.make_world`): grid, forcing,
  covariates, true parameters, and WoSIS-like profiles generated from the truth.  The synthetic profiles are
  screened by the same code as real ones (SOC density, pedo-transfer BD, the paper's filters).
* ``table`` — WoSIS-like horizon tables (ISIS, AfSP, WoSIS layout) plus optional NCSCD pedons.  Site
  forcing comes from a CESM2/CLM5 history file when the deck names one; otherwise it is **derived**: from the
  covariate table's land-surface temperature and precipitation when a covariate table is given, else from the
  synthetic world's climate at the site.  The source of every site's forcing is recorded (``forcing_source``).

File layout (all groups plain datasets; strings UTF-8 bytes)::

    /                 attrs: prepare_key, source, complete, summary (JSON), provenance (JSON)
    /profiles/        ragged layer table (Profiles.to_arrays: offsets (P+1), per-layer arrays (L,))
    /profiles_truth/  synthetic only: noise-free SOC (g C m-3) per layer for the shared, clm5, compas truths
    /ledger/          every input profile: profile_id, source, kept, reasons, notes, layer counts
    /sites/forcing/   Forcing of each kept profile (P, ...) ; attrs forcing_source
    /sites/           covariates (P, K), covariate_names, forcing_ok, forcing_reason, cell (grid cell index)
    /grid/            the grid side: synthetic world groups (grid, land, covariates, forcing, truth, ...)
                      or the covariate-table cells with derived forcing

Re-running with the same deck (same ``prepare`` section, seed and models) reuses the file.  The file is
written under a temporary name and renamed when complete: a crash leaves the previous file or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputDataError
from ..provenance import json_default, provenance
from ..soil.forcing import Forcing
from .common import StageContext

log = logging.getLogger(__name__)

FILE_NAME = "inputs.h5"
FORMAT_VERSION = 1


def prepare_key(deck: dict) -> str:
    """Hash of everything that determines ``inputs.h5`` (the prepare section, seed, models, format)."""
    d = {"prepare": deck["prepare"], "seed": deck["seed"], "models": deck["models"], "format": FORMAT_VERSION}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def run(ctx: StageContext) -> dict[str, Any]:
    """Build (or reuse) ``inputs.h5``; returns the stage summary (identical on every rank)."""
    world, deck = ctx.world, ctx.deck
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
    if not path.is_file():
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
    with ctx.timer("write"):
        attrs = {
            "prepare_key": key, "source": prep["source"], "format_version": FORMAT_VERSION,
            "summary": json.dumps(summary, default=json_default),
            "provenance": json.dumps(provenance(deck, ctx.world.size), default=str),
        }
        _write_h5_atomic(path, groups, attrs)
    log.info("prepare: wrote %s: %d profiles kept of %d read (%d layers)", path, summary["profiles_kept"],
             summary["profiles_read"], summary["layers_kept"])
    return summary


def _screen(table: Any, deck: dict) -> Any:
    from ..data.profiles import screen_profiles

    s, p = deck["prepare"]["screening"], deck["prepare"]["ptf"]
    if p["om_factor"] != 1.724:
        raise InputDataError("prepare.ptf.om_factor: only the paper's 1.724 is supported by the screening code")
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
    from ..data.world import make_world

    w = deck["prepare"]["world"]
    world = make_world(w["resolution_deg"], seed=deck["seed"], n_profiles=w["n_profiles"], truth=w["truth"],
                       models=tuple(deck["models"]))
    arrays = world.to_arrays()
    table = synthetic_profile_table(arrays["profiles"])
    res = _screen(table, deck)
    prof = res.profiles
    # map kept profiles back to the world's profile rows / cells
    row_of = {pid: i for i, pid in enumerate(table.profile_id)}
    rows = np.array([row_of[p] for p in prof.profile_id], dtype=np.int64)
    p = arrays["profiles"]
    valid_cell = p["valid_cell"][rows]
    forcing = world.forcing.take(valid_cell)
    groups["profiles"] = prof.to_arrays()
    groups["profiles_truth"] = _profile_truth(p, rows, prof)
    groups["ledger"] = res.ledger.to_arrays()
    ok, reasons = forcing.check()
    groups["sites"] = {
        "forcing": forcing.as_dict(),
        "covariates": world.covariates[p["land_cell"][rows]],
        "covariate_names": _bytes(arrays["covariates"]["names"]),
        "cell": valid_cell,
        "forcing_ok": ok.astype(np.uint8),
        "forcing_reason": _bytes(reasons),
        "forcing_source": _bytes(["synthetic"] * prof.n_profiles),
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


def synthetic_profile_table(p: dict[str, np.ndarray]) -> Any:
    """The world's padded profile arrays as a :class:`~prodampi.io.readers.ProfileTable`, so synthetic and
    real profiles go through the same screening and SOC-density code."""
    from ..io.readers import ProfileTable

    n = p["n_layers"].astype(np.int64)
    P, Lmax = p["top_cm"].shape
    mask = np.arange(Lmax)[None, :] < n[:, None]
    layer_profile = np.repeat(np.arange(P), n)
    ids = np.array([f"syn{int(i):07d}" for i in p["profile_id"]])
    bd = np.where(p["bd_from_ptf"], np.nan, p["bd_g_cm3"])  # the PTF fills BD the world marked as unmeasured
    layers = {
        "top_cm": p["top_cm"][mask], "bottom_cm": p["bottom_cm"][mask],
        "soc_g_per_kg": p["soc_g_per_kg"][mask], "bd_g_cm3": bd[mask], "coarse_pct": p["coarse_pct"][mask],
    }
    return ProfileTable(source="synthetic", files=("<embedded world>",), profile_id=ids, lat=p["lat"],
                        lon=p["lon"], layer_profile=layer_profile, layers=layers,
                        layer_row=np.flatnonzero(mask.ravel()).astype(np.int64), rejections=[],
                        input_profile_ids=list(ids), profile_row=np.arange(P, dtype=np.int64))


def _profile_truth(p: dict, rows: np.ndarray, prof: Any) -> dict[str, np.ndarray]:
    """Noise-free SOC (g C m-3) at the kept layers, matched to the world's layers by (profile, top, bottom)."""
    n = p["n_layers"].astype(np.int64)
    mask = np.arange(p["top_cm"].shape[1])[None, :] < n[:, None]
    r, c = np.nonzero(mask)
    where = {(int(a), float(t), float(b)): (int(a), int(k))
             for a, k, t, b in zip(r, c, p["top_cm"][mask], p["bottom_cm"][mask])}
    kept_row = np.repeat(rows, np.diff(prof.offsets))
    hits = [where.get((int(a), float(t), float(b))) for a, t, b in zip(kept_row, prof.top_cm, prof.bottom_cm)]
    found = np.array([h is not None for h in hits], dtype=bool)
    rr = np.array([h[0] if h else 0 for h in hits], dtype=np.int64)
    cc = np.array([h[1] if h else 0 for h in hits], dtype=np.int64)
    return {key: np.where(found, p[key][rr, cc], np.nan) if hits else np.zeros(0)
            for key in ("truth_g_m3", "truth_clm5_g_m3", "truth_compas_g_m3")}


def _tables(deck: dict, groups: dict) -> dict[str, Any]:
    from ..data.profiles import Profiles, ScreeningLedger, ScreeningResult
    from ..io import readers

    prep = deck["prepare"]
    pr = prep["profiles"]
    mapping = {"isis": readers.ISIS_MAPPING, "afsp": readers.AFSP_MAPPING}.get(pr["format"], readers.ISIS_MAPPING)
    mapping = json.loads(json.dumps(mapping))
    mapping["sites"]["file"] = str(Path(pr["sites"]).resolve())
    mapping["horizons"]["file"] = str(Path(pr["horizons"]).resolve())
    table = readers.read_profile_table(Path(pr["sites"]).resolve().parent, mapping)
    n_reader_rejections = len(table.rejections)
    res = _screen(table, deck)
    if pr["ncscd"]:
        nc = _screen(readers.read_ncscd_pedons(pr["ncscd"]), deck)
        res = ScreeningResult(Profiles.concatenate([res.profiles, nc.profiles]),
                              ScreeningLedger.concatenate([res.ledger, nc.ledger]))
    prof = res.profiles
    lat, lon = prof.lat, prof.lon

    cov_names: list[str] = []
    site_cov = np.zeros((prof.n_profiles, 0))
    grid_group: dict[str, Any] = {}
    cov = None
    if prep["covariates"]["table"]:
        cov = readers.read_covariate_grid(prep["covariates"]["table"])
        cov_names = list(cov.names)
        site_cov = cov.at_sites(lat, lon, max_distance_km=50.0)

    if prep["forcing"]["cesm2_history"]:
        forcing = readers.read_cesm2_forcing(prep["forcing"]["cesm2_history"], lat, lon)
        source = np.array(["cesm2"] * prof.n_profiles)
    elif cov is not None:
        forcing = _forcing_from_covariates(lat, site_cov, cov_names)
        source = np.array(["derived:covariates"] * prof.n_profiles)
    else:
        forcing, cells, wcov, wnames = _forcing_from_world_climate(deck, lat, lon)
        source = np.array(["derived:synthetic-climate"] * prof.n_profiles)
        site_cov, cov_names = wcov, wnames
    if cov is not None:
        grid_forcing = _forcing_from_covariates(cov.lat, cov.values, cov_names)
        grid_group = {"cells": {"lat": cov.lat, "lon": cov.lon, "covariates": cov.values,
                                "covariate_names": _bytes(cov_names), "covariate_units": _bytes(cov.units)},
                      "forcing": grid_forcing.as_dict(),
                      "attrs_json": np.bytes_(json.dumps({"grid": "covariate table cells",
                                                          "forcing_source": "derived:covariates"}))}
    ok, reasons = forcing.check()
    groups["profiles"] = prof.to_arrays()
    groups["ledger"] = res.ledger.to_arrays()
    groups["sites"] = {"forcing": forcing.as_dict(), "covariates": site_cov, "covariate_names": _bytes(cov_names),
                       "forcing_ok": ok.astype(np.uint8), "forcing_reason": _bytes(reasons),
                       "forcing_source": _bytes(source)}
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


def _forcing_from_covariates(lat: np.ndarray, values: np.ndarray, names: list[str]) -> Forcing:
    """Forcing derived from land-surface temperature (day/night means, degC) and precipitation (mm yr-1)."""
    from ..data.forcing_synth import forcing_from_climate

    need = ("TDMMOD0a", "TNMMOD0a", "PREGSM0a")
    missing = [n for n in need if n not in names]
    if missing:
        raise InputDataError(f"covariate table lacks {', '.join(missing)} needed to derive forcing")
    col = {n: values[:, names.index(n)] if values.size else np.zeros(0) for n in need}
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size == 0:
        return _empty_forcing()
    return forcing_from_climate(lat, lst_day_c=col["TDMMOD0a"], lst_night_c=col["TNMMOD0a"],
                                precip_mm_yr=col["PREGSM0a"])


def _forcing_from_world_climate(deck: dict, lat: np.ndarray, lon: np.ndarray
                                ) -> tuple[Forcing, np.ndarray, np.ndarray, list[str]]:
    """Forcing from the synthetic world's monthly climate at the nearest land cell of each site."""
    from ..data.forcing_synth import forcing_from_climate
    from ..data.world import make_world

    w = make_world(deck["prepare"]["world"]["resolution_deg"], seed=deck["seed"], n_profiles=0, models=None)
    land = w.land
    if lat.size == 0:
        return _empty_forcing(), np.zeros(0, dtype=np.int64), np.zeros((0, 0)), list(w.covariate_names)
    from ..io.readers import nearest_on_sphere, sphere_tree

    cells, _ = nearest_on_sphere(sphere_tree(land["lat"], land["lon"]), lat, lon)  # great-circle nearest land
    forcing = forcing_from_climate(lat, t_air_monthly_c=land["ta_c"][cells], precip_monthly_mm=land["pr_mm"][cells],
                                   npp_gc_m2_yr=land["npp_gc_m2_yr"][cells], forest_fraction=land["forest"][cells],
                                   depth_to_bedrock_m=land["dtb_m"][cells], wetland=land["wetland"][cells],
                                   organic=land["organic"][cells])
    return forcing, cells, w.covariates[cells], list(w.covariate_names)


def _empty_forcing() -> Forcing:
    z = np.zeros
    return Forcing(tsoi_k=z((0, 20, 12)), w_scalar=z((0, 20, 12)), o_scalar=z((0, 20, 12)), fpi=z((0, 20, 12)),
                   altmax_m=z((0, 12)), altmax_lastyear_m=z((0, 12)), nbedrock=z(0, dtype=np.int64),
                   litter_input=z((0, 4)))


# ------------------------------------------------------------------------------------------------ HDF5
def _bytes(xs: Any) -> np.ndarray:
    xs = [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(xs).ravel()]
    return np.array([x.encode("utf-8") for x in xs], dtype=bytes) if xs else np.zeros(0, dtype="S1")


def _h5able(v: Any) -> Any:
    v = np.asarray(v)
    if v.dtype.kind == "U":
        return _bytes(v)
    if v.dtype.kind == "O":
        return _bytes([str(x) for x in v.ravel()])
    return v


def _write_group(g: Any, d: dict) -> None:
    for k, v in d.items():
        if isinstance(v, dict):
            _write_group(g.create_group(k), v)
        else:
            g.create_dataset(k, data=_h5able(v))


def _write_h5_atomic(path: Path, groups: dict, attrs: dict) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            _write_group(f, groups)
            for k, v in attrs.items():
                f.attrs[k] = v
            f.attrs["complete"] = 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_inputs(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``inputs.h5`` back: ``profiles`` (Profiles), ``site_forcing`` (Forcing), ``ledger`` arrays, ``sites``
    arrays, ``summary`` and ``attrs`` (for later stages and tests)."""
    import h5py

    from ..data.profiles import Profiles

    def load(g: Any) -> dict:
        return {k: (load(v) if isinstance(v, h5py.Group) else v[()]) for k, v in g.items()}

    with h5py.File(path, "r") as f:
        if not f.attrs.get("complete"):
            raise InputDataError(f"{path}: incomplete inputs file (re-run prepare)")
        data = {k: load(f[k]) for k in f}
        attrs = dict(f.attrs)
    sites = data.get("sites", {})
    return {
        "profiles": Profiles.from_arrays(data["profiles"]),
        "site_forcing": Forcing.from_dict(sites["forcing"]),
        "sites": sites,
        "ledger": data["ledger"],
        "profiles_truth": data.get("profiles_truth"),
        "grid": data.get("grid"),
        "summary": json.loads(attrs["summary"]),
        "attrs": attrs,
    }

