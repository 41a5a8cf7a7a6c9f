"""The ``inputs.h5`` contract: what stage **prepare** writes and every later stage reads.

One file per run directory (``<run_dir>/inputs.h5``), written by :func:`write_inputs` (atomically: a
temporary file in the same folder, renamed when complete) and read back by :func:`read_inputs`, which checks
the format version, the completion flag and every dataset of the layout below, and names the file and the
dataset path of what is missing.  Text is UTF-8 bytes, flags are ``uint8`` (0/1).

Root attributes
---------------
``format_version`` (int, :data:`FORMAT_VERSION`), ``complete`` (1 once fully written), ``source``
(``"synthetic"`` or ``"table"``), ``prepare_key`` (hash of the deck parts that determine the file; reuse
check), ``summary`` (JSON: the stage summary: counts, rejections by reason, forcing sources), ``provenance``
(JSON: versions, git revision, deck hash, seed, ranks, host, time).

Groups
------
``profiles/``
    The kept profiles as a ragged layer table (:meth:`prodampi.data.profiles.Profiles.to_arrays`): layers of
    profile ``p`` are rows ``offsets[p]:offsets[p+1]`` of the per-layer datasets.
``profiles_truth/`` (synthetic source only)
    Noise-free SOC of the embedded world at every kept layer, matched by (profile, top, bottom).
``ledger/``
    One row per *input* profile (kept or not) with the screening outcome.
``sites/``
    Per kept profile: the model forcing (:class:`prodampi.soil.forcing.Forcing` fields), covariates and
    where the forcing came from (``cesm2``, ``derived:covariates``, ``derived:synthetic-climate``,
    ``synthetic``).
``grid/``
    The grid side for the map stage.  Synthetic source: the embedded world
    (:meth:`prodampi.data.world.World.to_arrays` groups ``grid``, ``land``, ``covariates``, ``forcing``,
    ``forcing_details``, ``truth``).  Table source with a covariate table: the covariate-table cells and
    their derived forcing (``grid/cells``, ``grid/forcing``).  Absent otherwise.

Layout
------
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..soil import MODELS
from ..soil.forcing import FIELD_SPEC, Forcing
from .h5file import (
    Dataset,
    check_file,
    check_layout,
    layout_text,
    read_checked,
    tree_index,
    verify_file,
    write_h5_atomic,
)

#: version of the layout below; bump it when a dataset is added, removed or changes meaning.
#: 2: ``profiles/bd_source`` added (the BD source of every layer, for the WoSIS readers).
#: 3: every dataset carries its content checksum (attribute ``blake2b``), verified before reuse.
FORMAT_VERSION = 3

#: the file's name in the run directory
FILE_NAME = "inputs.h5"

#: the command that makes the file (for messages)
MADE_BY = "prepare"



def _forcing(prefix: str, n: str, when: str) -> list[Dataset]:
    out = []
    for name, (trailing, unit, _rng) in FIELD_SPEC.items():
        dims = (n, *(str(t) for t in trailing))
        dtype = "i8" if name == "nbedrock" else "f8"
        out.append(Dataset(f"{prefix}/{name}", dims, dtype, unit, f"forcing field {name}", when))
    return out


def _layout() -> tuple[Dataset, ...]:
    D = Dataset
    lay: list[Dataset] = [
        # ---------------------------------------------------------------- kept profiles
        D("profiles/profile_id", ("P",), "S", "", "profile id (unique within the file)"),
        D("profiles/source", ("P",), "S", "", "source table (isis, afsp, ncscd, synthetic, ...)"),
        D("profiles/lat", ("P",), "f8", "degree_north", "site latitude"),
        D("profiles/lon", ("P",), "f8", "degree_east", "site longitude"),
        D("profiles/offsets", ("P+1",), "i8", "", "first layer row of each profile; last = L"),
        D("profiles/top_cm", ("L",), "f8", "cm", "layer top depth"),
        D("profiles/bottom_cm", ("L",), "f8", "cm", "layer bottom depth"),
        D("profiles/node_depth_m", ("L",), "f8", "m", "layer mid-depth (observation depth)"),
        D("profiles/soc_g_per_kg", ("L",), "f8", "g C kg-1", "SOC content of the fine earth"),
        D("profiles/bd_g_cm3", ("L",), "f8", "g cm-3", "bulk density (measured or pedo-transfer)"),
        D("profiles/coarse_pct", ("L",), "f8", "% vol", "coarse fragments (0 where missing)"),
        D("profiles/soc_density_g_m3", ("L",), "f8", "g C m-3", "SOC density = content x BD x (1 - coarse)"),
        D("profiles/bd_from_ptf", ("L",), "u1", "1", "bulk density from the pedo-transfer function"),
        D("profiles/coarse_missing", ("L",), "u1", "1", "coarse fragments were not reported"),
        D("profiles/obs_usable", ("L",), "u1", "1", "layer usable as an observation"),
        D("profiles/bd_source", ("L",), "S", "", "where the BD came from: ptf | measured | the WoSIS column | ''"),
        # ---------------------------------------------------------------- ledger of every input profile
        D("ledger/profile_id", ("N",), "S", "", "input profile id"),
        D("ledger/source", ("N",), "S", "", "source table"),
        D("ledger/kept", ("N",), "u1", "1", "kept by the screening"),
        D("ledger/reasons", ("N",), "S", "", "why rejected ('code: detail'; '; '-joined)"),
        D("ledger/notes", ("N",), "S", "", "remarks that did not reject ('; '-joined)"),
        D("ledger/n_layers_read", ("N",), "i8", "", "layers read"),
        D("ledger/n_layers_kept", ("N",), "i8", "", "layers kept"),
        # ---------------------------------------------------------------- sites (kept profiles)
        *_forcing("sites/forcing", "P", "always"),
        D("sites/covariates", ("P", "K"), "f8", "see covariate_names", "covariates at the site"),
        D("sites/covariate_names", ("K",), "S", "", "covariate column names"),
        D("sites/forcing_ok", ("P",), "u1", "1", "forcing passed Forcing.check()"),
        D("sites/forcing_reason", ("P",), "S", "", "why the forcing failed the check ('' if ok)"),
        D("sites/forcing_source", ("P",), "S", "", "cesm2 | derived:covariates | derived:synthetic-climate | "
                                                   "synthetic"),
        D("sites/cell", ("P",), "i8", "", "row of the site's cell in grid/forcing (valid cells)", "synthetic"),
        # ---------------------------------------------------------------- synthetic: truth at the layers
        D("profiles_truth/truth_g_m3", ("L",), "f8", "g C m-3", "noise-free shared truth T", "synthetic"),
        D("profiles_truth/truth_clm5_g_m3", ("L",), "f8", "g C m-3", "noise-free CLM5 truth", "synthetic"),
        D("profiles_truth/truth_compas_g_m3", ("L",), "f8", "g C m-3", "noise-free COMPAS truth", "synthetic"),
        # ---------------------------------------------------------------- table + covariate table: grid cells
        D("grid/attrs_json", (), "S", "", "JSON: grid description and forcing source", "grid"),
        D("grid/cells/lat", ("G",), "f8", "degree_north", "cell centre latitude", "covariate grid"),
        D("grid/cells/lon", ("G",), "f8", "degree_east", "cell centre longitude", "covariate grid"),
        D("grid/cells/covariates", ("G", "K"), "f8", "see covariate_units", "covariates", "covariate grid"),
        D("grid/cells/covariate_names", ("K",), "S", "", "covariate names", "covariate grid"),
        D("grid/cells/covariate_units", ("K",), "S", "", "covariate units", "covariate grid"),
        *_forcing("grid/forcing", "G", "covariate grid"),
        # ---------------------------------------------------------------- synthetic: the embedded world
        D("grid/grid/lat", ("n_lat",), "f8", "degree_north", "grid row centres", "synthetic"),
        D("grid/grid/lon", ("n_lon",), "f8", "degree_east", "grid column centres", "synthetic"),
        D("grid/grid/lat_bounds", ("n_lat", "2"), "f8", "degree_north", "row bounds", "synthetic"),
        D("grid/grid/lon_bounds", ("n_lon", "2"), "f8", "degree_east", "column bounds", "synthetic"),
        D("grid/grid/land_fraction", ("n_lat", "n_lon"), "f8", "1", "land fraction", "synthetic"),
        D("grid/grid/row_area_m2", ("n_lat",), "f8", "m2", "area of one cell in each row", "synthetic"),
        D("grid/land/cell_id", ("n_land",), "i8", "", "flat grid index of each land cell", "synthetic"),
        D("grid/land/valid", ("n_land",), "bool", "1", "valid cell (forcing and truth exist)", "synthetic"),
    ]
    land = [("lat", "degree_north", "centre latitude"), ("lon", "degree_east", "centre longitude"),
            ("area_m2", "m2", "cell area"), ("land_fraction", "1", "land fraction"),
            ("elevation_m", "m", "elevation"), ("slope_m_km", "m km-1", "terrain slope"),
            ("dtr_k", "K", "diurnal temperature range"), ("aridity", "1", "P / PET"),
            ("npp_gc_m2_yr", "g C m-2 yr-1", "net primary production"), ("forest", "1", "forest fraction"),
            ("crop", "1", "cropland fraction"), ("wetland", "1", "wetland intensity"),
            ("organic", "1", "organic-soil index"), ("dtb_m", "m", "depth to bedrock"),
            ("continentality", "1", "continentality index")]
    lay += [D(f"grid/land/{k}", ("n_land",), "f8", u, doc, "synthetic") for k, u, doc in land]
    lay += [
        D("grid/land/permafrost", ("n_land",), "bool", "1", "permafrost cell", "synthetic"),
        D("grid/land/ta_c", ("n_land", "12"), "f8", "degC", "monthly air temperature", "synthetic"),
        D("grid/land/pr_mm", ("n_land", "12"), "f8", "mm month-1", "monthly precipitation", "synthetic"),
        D("grid/land/pet_mm", ("n_land", "12"), "f8", "mm month-1", "monthly potential evapotranspiration",
          "synthetic"),
        D("grid/covariates/values", ("n_land", "K"), "f8", "see units", "the NN covariates", "synthetic"),
        D("grid/covariates/names", ("K",), "S", "", "covariate names", "synthetic"),
        D("grid/covariates/units", ("K",), "S", "", "covariate units", "synthetic"),
        D("grid/covariates/categorical", ("K",), "bool", "1", "categorical covariate", "synthetic"),
        D("grid/forcing/valid_index", ("n_valid",), "i8", "", "row in grid/land of each valid cell", "synthetic"),
        *_forcing("grid/forcing", "n_valid", "synthetic"),
    ]
    details = [("alt_m", "m", "active-layer thickness"), ("aridity", "1", "P / PET"),
               ("cwd_share", "1", "share of litter input as CWD"), ("delta_t_k", "K", "soil-air offset"),
               ("forest", "1", "forest fraction"), ("half_range_air_k", "K", "half annual air range"),
               ("loss_fraction", "1", "litter loss fraction"), ("npp_gc_m2_yr", "g C m-2 yr-1", "NPP"),
               ("snow_index", "1", "snow insulation index"), ("t_air_mean_c", "degC", "mean air temperature"),
               ("t_soil_mean_c", "degC", "mean soil temperature"), ("tdd_c_days", "degC day", "thawing degree days")]
    lay += [D(f"grid/forcing_details/{k}", ("n_valid",), "f8", u, doc, "synthetic") for k, u, doc in details]
    lay += [
        D("grid/forcing_details/permafrost", ("n_valid",), "bool", "1", "permafrost", "synthetic"),
        D("grid/forcing_details/pet_mm", ("n_valid", "12"), "f8", "mm month-1", "monthly PET", "synthetic"),
        D("grid/truth/hidden_field", ("n_valid",), "f8", "1", "hidden driver (not a covariate)", "synthetic"),
        D("grid/truth/soc_truth_g_m3", ("n_valid", "20"), "f8", "g C m-3", "shared truth T at the layer nodes",
          "synthetic"),
        D("grid/truth/soc_1m_truth_g_m2", ("n_valid",), "f8", "g C m-2", "shared truth T, 0-1 m stock",
          "synthetic"),
    ]
    for m in MODELS:
        w, n = f"synthetic:{m}", f"n_par_{m}"
        lay += [
            D(f"grid/truth/u_{m}", ("n_valid", n), "f8", "1", f"{m} true parameters, normalised", w),
            D(f"grid/truth/theta_{m}", ("n_valid", n), "f8", "parameter table units", f"{m} true parameters", w),
            D(f"grid/truth/soc_{m}_g_m3", ("n_valid", "20"), "f8", "g C m-3", f"{m} true SOC at the nodes", w),
            D(f"grid/truth/soc_1m_{m}_g_m2", ("n_valid",), "f8", "g C m-2", f"{m} true SOC, 0-1 m stock", w),
            D(f"grid/truth/status_{m}", ("n_valid",), "i1", "", f"{m} status code of the true solve", w),
            D(f"grid/truth/param_names_{m}", (n,), "S", "", f"{m} parameter names", w),
            D(f"grid/truth/calibration_shift_{m}", (n,), "f8", "logit", f"{m} calibration shift", w),
            D(f"grid/truth/u_customary_{m}", (n,), "f8", "1", f"{m} customary parameters, normalised", w),
        ]
    lay.append(D("grid/truth/da_valid_compas", ("n_valid",), "bool", "1",
                 "COMPAS truth passes the DA's 10:1 rule", "synthetic:compas"))
    return tuple(lay)


#: every dataset of ``inputs.h5``, its dimensions, dtype, unit and when it is present
LAYOUT: tuple[Dataset, ...] = _layout()

#: what the dimension names stand for
DIMS: dict[str, str] = {
    "P": "kept profiles", "L": "kept layers (all profiles)", "N": "input profiles (kept or not)",
    "K": "covariates", "G": "covariate-table cells", "n_lat/n_lon": "grid rows/columns",
    "n_land": "land-domain cells", "n_valid": "valid cells", "n_par_<m>": "parameters of model m",
}

__doc__ += layout_text(LAYOUT, DIMS) + """

``[synthetic]``: present when ``source`` is ``synthetic``; ``[synthetic:<m>]``: and model ``m`` is among the
root attribute ``models``; ``[covariate grid]``: a table source with a covariate table; ``[grid]``: either.
"""


def conditions(attrs: Mapping[str, Any], paths: set[str]) -> set[str]:
    """The layout conditions that hold for a file with these root attributes and dataset paths."""
    held: set[str] = set()
    src = attrs.get("source")
    src = src.decode() if isinstance(src, bytes) else src
    if src == "synthetic":
        held |= {"synthetic", "grid"}
        try:
            models = json.loads(attrs.get("models", "[]"))
        except (TypeError, ValueError):
            models = []
        held |= {f"synthetic:{m}" for m in models}
    elif any(p.startswith("grid/") for p in paths):
        held |= {"covariate grid", "grid"}
    return held


def _remake(deck_hint: str) -> str:
    return f"make it again with: prodampi {MADE_BY} {deck_hint}"


def check_inputs(path: str | os.PathLike, key: str | None = None, verify: bool = True) -> str | None:
    """Why ``inputs.h5`` at ``path`` cannot be used, or None when it can: the whole reuse decision.

    ``"missing"``, ``"incomplete ..."``, another format version, made by another deck (root ``prepare_key``
    differs from ``key``, when given) or -- with ``verify`` (default) -- a dataset whose values fail their
    stored checksum (the reason names the dataset path).  ``verify=False``: root attributes only."""
    import h5py

    why = check_file(path, FORMAT_VERSION, "inputs")
    if why is not None:
        return why
    if key is not None:
        try:
            with h5py.File(path, "r") as f:
                have = f.attrs.get("prepare_key")
        except OSError as e:
            return f"not a readable HDF5 file ({e})"
        have = have.decode() if isinstance(have, bytes) else have
        if have != key:
            return "made by another deck (its prepare_key differs)"
    if verify:
        problems = verify_file(path)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return problems[0].split(": ", 1)[1] + more
    return None


def write_inputs(path: str | os.PathLike, groups: Mapping[str, Any], attrs: Mapping[str, Any]) -> None:
    """Write ``inputs.h5`` atomically after checking ``groups`` against :data:`LAYOUT`.

    Parameters
    ----------
    path : the target (``<run_dir>/inputs.h5``)
    groups : nested dict of arrays, in the layout above
    attrs : root attributes (``source``, ``prepare_key``, ``summary``, ``provenance``, ``models``);
        ``format_version`` and ``complete`` are set here

    Raises
    ------
    ValueError
        if ``groups`` lacks a dataset the layout requires or has one of the wrong shape (a writer bug).
    """
    attrs = {**attrs, "format_version": FORMAT_VERSION}
    index = tree_index(groups)
    problems = check_layout(index, LAYOUT, conditions(attrs, set(index)))
    if problems:
        raise ValueError(f"{path}: the data do not fit the inputs.h5 layout: " + "; ".join(problems))
    write_h5_atomic(path, groups, attrs)


def undeclared_datasets(path: str | os.PathLike) -> list[str]:
    """Datasets in the file that :data:`LAYOUT` does not declare (tests keep the layout complete)."""
    import h5py

    from .h5file import file_index

    with h5py.File(path, "r") as f:
        attrs, index = dict(f.attrs), file_index(f)
    return [p for p in check_layout(index, LAYOUT, conditions(attrs, set(index)), strict=True)
            if p.endswith("not declared in the layout")]


def read_inputs(path: str | os.PathLike, deck_hint: str = "DECK") -> dict[str, Any]:
    """Read ``inputs.h5`` back, after checking it.

    Parameters
    ----------
    path : the file
    deck_hint : the deck as the user names it, for the "make it again with" hint in messages

    Returns
    -------
    dict
        ``profiles`` (:class:`~prodampi.data.profiles.Profiles`), ``site_forcing``
        (:class:`~prodampi.soil.forcing.Forcing`), ``sites`` (dict of the ``sites/`` arrays), ``ledger``
        (dict of arrays), ``profiles_truth`` (dict or None), ``grid`` (nested dict or None), ``summary``
        (dict) and ``attrs`` (root attributes).

    Raises
    ------
    InputDataError
        naming the file and what is wrong: missing, incomplete, another format version, or the path of a
        missing or misshapen dataset.
    """
    from ..data.profiles import Profiles

    data, attrs = read_checked(Path(path), LAYOUT, FORMAT_VERSION, "inputs", conditions, _remake(deck_hint))
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
