"""The input deck: one YAML file that drives every stage of a run.

The schema below is the single source of truth for the keys a deck may hold, their types, allowed values
and defaults.  :func:`load_deck` reads a YAML file, fills defaults and returns a plain nested ``dict``; every
problem is reported at once, one line per problem, naming the field path, the value and what is allowed::

    deck.yaml: assimilate.chains = -2: must be an integer >= 1
    deck.yaml: prepare.profiles.sites = 'nope.csv': file not found (relative to the deck's folder)
    deck.yaml: modles: unknown key (did you mean 'models'?)

Relative paths in a deck are relative to the folder of the deck file.  ``prodampi validate DECK`` prints
the fully resolved deck (defaults filled in); the same resolved deck is written into every stage's output.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data.profiles import OM_PER_SOC, PAPER_PTF
from .errors import DeckError
from .inference import SAMPLER_MODES
from .io.formats import PROFILE_FORMATS
from .soil import MODELS
from .soil.options import DEFAULT_PRESET, PRESETS

# The names a deck may use come from the registries that own them (written once, there):
#   models            prodampi.soil.MODELS
#   model presets     prodampi.soil.options.PRESETS
#   profile formats   prodampi.io.formats.PROFILE_FORMATS (and the prepare.profiles keys each one needs)
#   sampler modes     prodampi.inference.SAMPLER_MODES


# ---------------------------------------------------------------------------------------------- schema types
@dataclass(frozen=True)
class F:
    """One leaf field of the schema.

    Parameters
    ----------
    kind : "int" | "float" | "str" | "bool" | "path" | "list"
    default : default value (``REQUIRED`` when the key must be given)
    lo, hi : inclusive numeric bounds (``lo_open``/``hi_open`` make them strict)
    choices : allowed values (for str, or for list items)
    nullable : ``None`` (YAML ``null``) is accepted
    must_exist : for paths, the file or folder must exist
    item : kind of list items
    min_len : minimum list length
    unique : list items must differ (default True)
    doc : one-line description (shown by ``prodampi validate --schema``)
    """

    kind: str
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    nullable: bool = False
    must_exist: bool = False
    item: str | None = None
    min_len: int = 0
    doc: str = ""
    unique: bool = True


REQUIRED = object()


@dataclass(frozen=True)
class S:
    """A section (mapping) of the schema."""

    fields: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


SCHEMA = S(doc="prodampi input deck", fields={
    "run_dir": F("path", REQUIRED, doc="run directory for every output (created if missing); "
                                      "overridden by --run-dir"),
    "seed": F("int", 20240101, lo=0, hi=2**63 - 1, doc="master seed; all random streams are keyed by it"),
    "models": F("list", list(MODELS), item="str", choices=tuple(MODELS), min_len=1,
                doc="soil models to run"),
    "model_options": S(doc="per-model options, recorded in provenance", fields={
        m: S(doc=f"options of model {m}", fields={
            "preset": F("str", DEFAULT_PRESET, choices=PRESETS,
                        doc="named option set: 'paper' = the authors' forward function, 'textbook' = corrected"),
        }) for m in MODELS}),
    "description": F("str", "", doc="free text, copied into provenance"),
    "logging": S(doc="logging", fields={
        "level": F("str", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
        "per_rank_files": F("bool", True, doc="write logs/<stage>_p<rank>.log for every rank"),
        "progress_every_s": F("float", 30.0, lo=0.1, doc="heartbeat cadence of long stages (s)"),
    }),
    "prepare": S(doc="stage 1: profiles, forcing and covariates -> inputs.h5", fields={
        "source": F("str", "synthetic", choices=("synthetic", "table"),
                    doc="'synthetic' = embedded default world; 'table' = WoSIS-like horizon tables"),
        "world": S(doc="the embedded synthetic world", fields={
            "resolution_deg": F("float", 2.0, lo=0.25, hi=10.0, doc="grid spacing (deg); 0.5 for full runs"),
            "n_profiles": F("int", 400, lo=1, hi=10_000_000, doc="synthetic WoSIS-like profiles"),
            "truth": F("str", "shared", choices=("shared", *MODELS),
                       doc="what the synthetic observations sample: the geometric mean of both models' "
                           "true SOC ('shared') or one model's own (parameter-recovery runs)"),
            "layers": F("str", "realistic", choices=("realistic", "nodes"),
                        doc="synthetic profile layers: 'realistic' = WoSIS-like (3-10 layers to 30-200 cm); "
                            "'nodes' = the 20 CLM layers for every profile (node depths 0.01-8.03 m, the "
                            "paper's recovery experiment)"),
            "noise": F("bool", True, doc="noisy WoSIS-like records; false = the noise-free truth, no zero/NaN "
                                         "layers (the authors' recovery experiment)"),
            "sites": F("str", "clustered", choices=("clustered", "cells"),
                       doc="'clustered' = WoSIS-like clustered sites; 'cells' = one site in each of n_profiles "
                           "distinct grid cells (the authors' recovery experiment draws grid cells)"),
        }),
        "profiles": S(doc="real profile tables (source: table); each format needs its own keys", fields={
            "format": F("str", "isis", choices=tuple(PROFILE_FORMATS),
                        doc="; ".join(f"{f.name}: {f.doc} (needs {', '.join(f.deck_keys)})"
                                      for f in PROFILE_FORMATS.values())),
            "sites": F("path", None, nullable=True, must_exist=True, doc="site table (csv or csv.gz)"),
            "horizons": F("path", None, nullable=True, must_exist=True, doc="horizon table (csv or csv.gz)"),
            "snapshot_dir": F("path", None, nullable=True, must_exist=True,
                              doc="folder of an unpacked WoSIS snapshot (wosis2019, wosis2023)"),
            "ncscd": F("path", None, nullable=True, must_exist=True, doc="optional NCSCD pedon table"),
        }),
        "forcing": S(doc="model forcing for sites", fields={
            "cesm2_history": F("path", None, nullable=True, must_exist=True,
                               doc="CESM2/CLM5 monthly climatology netCDF; null = derived from covariates"),
        }),
        "covariates": S(fields={
            "table": F("path", None, nullable=True, must_exist=True, doc="covariate grid table (csv/csv.gz)"),
        }),
        "screening": S(doc="paper's profile filters", fields={
            "min_layers": F("int", 3, lo=1, hi=100, doc="keep profiles with at least this many layers (>2)"),
            "min_bottom_cm": F("float", 50.0, lo=0.0, hi=1000.0, lo_open=False,
                               doc="deepest layer bottom must exceed this depth (cm)"),
        }),
        "ptf": S(doc="bulk-density pedo-transfer function BD = a + b exp(-c OM), OM = om_factor * SOC[g/kg]",
                 fields={
                     "a": F("float", PAPER_PTF[0], lo=0.0, hi=3.0),
                     "b": F("float", PAPER_PTF[1], lo=0.0, hi=5.0),
                     "c": F("float", PAPER_PTF[2], lo=0.0, hi=1.0),
                     "om_factor": F("float", OM_PER_SOC, lo=1.0, hi=3.0,
                                    doc=f"organic matter per SOC; only {OM_PER_SOC} (the paper's) is supported"),
                 }),
    }),
    "assimilate": S(doc="stage 2: per-profile adaptive-Metropolis MCMC -> posterior.h5", fields={
        "mode": F("str", "paper", choices=tuple(SAMPLER_MODES),
                  doc="; ".join(f"'{k}': {v}" for k, v in SAMPLER_MODES.items())),
        "chains": F("int", 3, lo=2, hi=64, doc="chains per profile (the paper: 3)"),
        "test_iterations": F("int", 20_000, lo=0, hi=10_000_000,
                             doc="paper: 'test run' length per chain; textbook: warm-up iterations"),
        "iterations": F("int", 50_000, lo=1, hi=10_000_000,
                        doc="stored-chain length per chain (paper: the 'formal run')"),
        "adapt_start": F("int", 4_000, lo=0, hi=10_000_000,
                         doc="paper: formal-run iteration after which the proposal covariance is re-estimated "
                             "every iteration; textbook: iteration from which it adapts"),
        "draws": F("int", 500, lo=1, hi=10_000_000,
                   doc="stored draws per chain in posterior.h5 (thinning = iterations // draws, recorded)"),
        "init": F("float", 0.5, lo=0.0, lo_open=True, hi=1.0, hi_open=True,
                  doc="starting point of every chain in normalised parameter space (paper: 0.5)"),
        "obs_sigma_log": F("float", 0.5, lo=0.0, lo_open=True, hi=10.0,
                           doc="textbook likelihood: SD of the Gaussian error of log SOC"),
        "failure_dj": F("str", "penalty", choices=("penalty", "stale"),
                        doc="paper: a failed solve costs J_old + 100 ('penalty'), or reuses the previous "
                            "iteration's dJ as the authors' CLM5 formal run does ('stale')"),
        "accepted_capacity": F("int", 2048, lo=16, hi=10_000_000,
                               doc="paper estimators: accepted states kept per chain (thinned by 2 beyond it)"),
        "batch_profiles": F("int", 256, lo=1, hi=1_000_000,
                            doc="profiles advanced together per rank (one work unit of the queue)"),
        "checkpoint_every_s": F("float", 300.0, lo=1.0, doc="wall seconds between sampler-state checkpoints"),
        "checkpoint_every_steps": F("int", None, nullable=True, lo=1,
                                    doc="also checkpoint every N sampler steps of a batch (null: by time only)"),
        "gelman_rubin_max": F("float", 1.05, lo=1.0, lo_open=True,
                              doc="G-R filter (paper: the authors' G-R averaged over parameters; textbook: "
                                  "rank-normalised R-hat, max over parameters)"),
        "nse_min": F("float", 0.0, lo=-1e9, hi=1.0, doc="NSE filter: keep sites with NSE > nse_min"),
        "nse_definition": F("str", None, nullable=True, choices=("legacy", "paper"),
                            doc="NSE of the filter: 'legacy' (the authors' R2, default in paper mode) or "
                                "'paper' (Eq. 1, default in textbook mode)"),
        "max_profiles": F("int", None, nullable=True, lo=1, doc="assimilate only the first N profiles"),
        "observations": F("str", "records", choices=("records", "own_truth"),
                          doc="'records': the profiles' SOC records; 'own_truth' (synthetic world only): each "
                              "model is fitted to its own noise-free true SOC at the layers (parameter recovery)"),
        "recovery": F("bool", True, doc="synthetic world: score posterior means against the true parameters "
                                        "(recovery_<model>.csv/.png) when the observations are that model's"),
    }),
    "learn": S(doc="stage 3: neural-network ensemble (best guess + bootstrap) -> ensemble.h5", fields={
        "best_guess_members": F("int", 10, lo=1, hi=10_000,
                                doc="networks trained on all sites; their outputs' median is the best guess"),
        "bootstrap_members": F("int", 200, lo=0, hi=100_000, doc="bootstrap members (resampled sites)"),
        "epochs": F("int", 6000, lo=1, hi=1_000_000, doc="most epochs per member (paper 6,000)"),
        "patience": F("int", 1200, lo=0, hi=1_000_000,
                      doc="early stopping on the validation loss after this many epochs without a new "
                          "minimum (paper 1,200; 0: never); the weights of the lowest validation loss are kept"),
        "batch_size": F("int", 32, lo=1, hi=1_000_000, doc="rows per mini-batch (paper 32)"),
        "learning_rate": F("float", 1e-3, lo=0.0, lo_open=True, hi=10.0,
                           doc="Adadelta learning rate (Keras 2 default 1e-3; Keras 1 used 1.0)"),
        "rho": F("float", 0.95, lo=0.0, lo_open=True, hi=1.0, hi_open=True, doc="Adadelta decay rate"),
        "adadelta_eps": F("float", 1e-7, lo=0.0, lo_open=True, hi=1.0, doc="Adadelta epsilon"),
        "hidden": F("list", [256, 512, 512, 256], item="int", min_len=1, unique=False, doc="hidden-layer widths"),
        "dropout": F("float", 0.2, lo=0.0, hi=1.0, hi_open=True,
                     doc="dropout after every hidden layer (paper 0.2; the authors' CLM5 code 0.0)"),
        "output": F("str", "linear", choices=("linear", "sigmoid"),
                    doc="output layer: 'linear' (the authors'; the map stage clips to the box) or 'sigmoid'"),
        "loss": F("str", "paper", choices=("paper", "authors", "mse", "clm5_code", "compas_code"),
                  doc="'paper': RL x MSE (ratio of sums); 'authors': each model's code (CLM5 12,500 MSE x MARE, "
                      "COMPAS 500 MSE); 'mse'"),
        "ratio_eps": F("float", 1e-6, lo=0.0, hi=1.0,
                       doc="floor of the target in the loss ratios (spec default 1e-6; 0: none, as the code)"),
        "val_fraction": F("float", 0.1, lo=0.0, hi=0.9, doc="validation share of each member's sites"),
        "val_split": F("str", "random", choices=("random", "keras_tail"),
                       doc="'random' (seeded) or 'keras_tail' (the last rows, as the authors' Keras code)"),
        "bootstrap_resample": F("str", "proda", choices=("proda", "clm5_legacy", "compas_legacy"),
                                doc="'proda': N draws, validation = unique sites with all copies, OOB recorded; "
                                    "'clm5_legacy' / 'compas_legacy': the authors' scripts"),
        "holdout_fraction": F("float", 0.0, lo=0.0, hi=0.9,
                              doc="sites held out of every member, to score the ensemble (synthetic: vs truth)"),
        "gelman_rubin_max": F("float", None, nullable=True, lo=1.0, lo_open=True,
                              doc="re-filter the sites on the assimilation's G-R (null: its status decides, "
                                  "i.e. assimilate.gelman_rubin_max); the authors filter in the NN scripts too"),
        "nse_min": F("float", None, nullable=True, lo=-1e9, hi=1.0,
                     doc="re-filter the sites on NSE > nse_min (null: the assimilation's status decides)"),
        "target": F("str", "mean", choices=("mean", "mode"),
                    doc="training target: the posterior mean ('mean'; paper mode: the authors' estimator) or "
                        "the paper kernel's GEV mode"),
        "stack_members": F("int", 4, lo=1, hi=10_000,
                           doc="members trained together as one stacked network (a work unit; 4 was the fastest "
                               "in prodampi bench learn on 2 CPU cores)"),
        "ddp_group_size": F("int", 1, lo=1, hi=4096,
                            doc="ranks per DistributedDataParallel group (1: one member stack per rank)"),
        "threads_per_rank": F("int", 1, lo=1, hi=1024, doc="torch intra-op threads per rank"),
        "device": F("str", "cpu", choices=("cpu", "cuda", "auto"),
                    doc="'cuda': one GPU per rank (NCCL in DDP groups); 'auto': cuda when present"),
        "checkpoint_every_s": F("float", 300.0, lo=0.0, doc="wall seconds between member checkpoints"),
        "checkpoint_every_epochs": F("int", None, nullable=True, lo=1,
                                     doc="also checkpoint every N epochs (null: by time only)"),
    }),
    "map": S(doc="stage 4: global maps", fields={
        "scenarios": F("list", ["customary", "proda"], item="str", choices=("customary", "proda"), min_len=1),
        "bootstrap_sd": F("bool", True),
        "output_float": F("str", "float32", choices=("float32", "float64")),
    }),
    "report": S(doc="stage 5: statistics and figures", fields={
        "figures": F("bool", True),
        "depth_limit_m": F("float", 1.0, lo=0.0, lo_open=True, hi=8.6, doc="depth of the global totals (m)"),
    }),
})


# ---------------------------------------------------------------------------------------------- validation
def _kind_ok(kind: str, v: Any) -> bool:
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "float":
        return isinstance(v, int | float) and not isinstance(v, bool)
    if kind in ("str", "path"):
        return isinstance(v, str)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "list":
        return isinstance(v, list)
    raise AssertionError(kind)


_KIND_WORD = {"int": "an integer", "float": "a number", "str": "a string", "path": "a path (string)",
              "bool": "true or false", "list": "a list"}


def _range_text(f: F) -> str:
    parts = []
    if f.lo is not None:
        parts.append(f"{'>' if f.lo_open else '>='} {f.lo:g}")
    if f.hi is not None:
        parts.append(f"{'<' if f.hi_open else '<='} {f.hi:g}")
    return " and ".join(parts)


def _check_scalar(kind: str, f: F, v: Any, where: str, base: Path | None, errs: list[str]) -> Any:
    if not _kind_ok(kind, v):
        allowed = _KIND_WORD[kind]
        if f.nullable:
            allowed += " or null"
        errs.append(f"{where} = {v!r}: must be {allowed}, got {type(v).__name__}")
        return v
    if kind == "float":
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            errs.append(f"{where} = {v!r}: must be a finite number")
            return v
    if kind in ("int", "float"):
        bad = (f.lo is not None and (v <= f.lo if f.lo_open else v < f.lo)) or \
              (f.hi is not None and (v >= f.hi if f.hi_open else v > f.hi))
        if bad:
            errs.append(f"{where} = {v!r}: must be {_KIND_WORD[kind]} {_range_text(f)}")
    if f.choices is not None and kind == "str" and v not in f.choices:
        hint = difflib.get_close_matches(str(v), [str(c) for c in f.choices], n=1)
        errs.append(f"{where} = {v!r}: must be one of {', '.join(map(str, f.choices))}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    if kind == "path":
        if v.strip() == "":
            errs.append(f"{where} = {v!r}: must be a non-empty path")
            return v
        p = Path(os.path.expandvars(os.path.expanduser(v)))
        if not p.is_absolute() and base is not None:
            p = base / p
        p = Path(os.path.normpath(p))
        if f.must_exist and not p.exists():
            errs.append(f"{where} = {v!r}: file not found (looked for {p})")
        return str(p)
    return v


def _validate(schema: S, data: Any, prefix: str, base: Path | None, errs: list[str]) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errs.append(f"{prefix or '<deck>'} = {data!r}: must be a mapping of keys to values")
        data = {}
    out: dict[str, Any] = {}
    for key in data:
        if key not in schema.fields:
            hint = difflib.get_close_matches(str(key), list(schema.fields), n=1)
            where = f"{prefix}.{key}" if prefix else str(key)
            errs.append(f"{where}: unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else
                                                   f"; allowed: {', '.join(schema.fields)}"))
    for key, spec in schema.fields.items():
        where = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, S):
            out[key] = _validate(spec, data.get(key), where, base, errs)
            continue
        if key not in data:
            if spec.default is REQUIRED:
                errs.append(f"{where}: missing (required): {spec.doc}")
                continue
            out[key] = copy.deepcopy(spec.default)
            if spec.kind == "path" and out[key] is not None and base is not None:
                out[key] = _check_scalar("path", F("path"), out[key], where, base, errs)
            continue
        v = data[key]
        if v is None:
            if not spec.nullable:
                errs.append(f"{where} = null: must be {_KIND_WORD[spec.kind]}")
            out[key] = None
            continue
        if spec.kind == "list":
            if not isinstance(v, list):
                errs.append(f"{where} = {v!r}: must be a list of {_KIND_WORD[spec.item]} values")
                out[key] = v
                continue
            if len(v) < spec.min_len:
                errs.append(f"{where} = {v!r}: must hold at least {spec.min_len} item(s)")
            item_spec = F(spec.item, choices=spec.choices, lo=1 if spec.item == "int" else None)
            out[key] = [_check_scalar(spec.item, item_spec, x, f"{where}[{i}]", base, errs)
                        for i, x in enumerate(v)]
            if spec.unique and len(set(map(repr, v))) != len(v):
                errs.append(f"{where} = {v!r}: items must be unique")
            continue
        out[key] = _check_scalar(spec.kind, spec, v, where, base, errs)
    return out


def _cross_checks(deck: dict, errs: list[str]) -> None:
    prep = deck["prepare"]
    pr = prep["profiles"]
    if prep["source"] == "table" and pr["format"] in PROFILE_FORMATS:
        fmt = PROFILE_FORMATS[pr["format"]]
        for k in fmt.deck_keys:
            if pr[k] is None:
                errs.append(f"prepare.profiles.{k} = null: required when prepare.source is 'table' and "
                            f"prepare.profiles.format is {fmt.name!r} (it reads {', '.join(fmt.deck_keys)})")
        other = sorted({k for f in PROFILE_FORMATS.values() for k in f.deck_keys} - set(fmt.deck_keys))
        for k in other:
            if pr[k] is not None:
                errs.append(f"prepare.profiles.{k} = {pr[k]!r}: not read by format {fmt.name!r} (it reads "
                            f"{', '.join(fmt.deck_keys)}); remove it or choose a format that reads it")
    if prep["ptf"]["om_factor"] != OM_PER_SOC:
        errs.append(f"prepare.ptf.om_factor = {prep['ptf']['om_factor']!r}: only the paper's {OM_PER_SOC} is "
                    f"supported by the screening code")
    w = prep["world"]
    res = w["resolution_deg"]
    if isinstance(res, float) and res > 0 and not _grid_divides(res):
        allowed = _allowed_resolutions(0.25, 10.0)
        near = sorted(allowed, key=lambda r: abs(r - res))[:2]
        errs.append(f"prepare.world.resolution_deg = {res!r}: 180/res and 360/res must be whole numbers "
                    f"(the grid tiles the sphere); nearest allowed: {', '.join(f'{r:g}' for r in sorted(near))}")
    if isinstance(deck.get("run_dir"), str):
        _check_run_dir(deck["run_dir"], errs)
    a = deck["assimilate"]
    if a.get("observations") == "own_truth" and deck["prepare"]["source"] != "synthetic":
        errs.append("assimilate.observations = 'own_truth': needs prepare.source = 'synthetic' (the embedded "
                    "world's true SOC); real profiles have only their records")
    if isinstance(a["adapt_start"], int) and isinstance(a["iterations"], int) \
            and isinstance(a["test_iterations"], int) \
            and a["adapt_start"] > a["iterations"] + a["test_iterations"]:
        errs.append(f"assimilate.adapt_start = {a['adapt_start']}: must not exceed "
                    f"test_iterations + iterations = {a['test_iterations'] + a['iterations']}")


def validate_deck(data: Any, source: str = "<deck>", base: Path | None = None) -> dict:
    """Validate a parsed deck and return it with defaults filled in.

    Raises
    ------
    DeckError
        with one line per problem, each prefixed by ``source``.
    """
    errs: list[str] = []
    deck = _validate(SCHEMA, data, "", base, errs)
    if not errs:
        _cross_checks(deck, errs)
    if errs:
        raise DeckError([f"{source}: {e}" for e in errs])
    return deck


# Limits on what a deck file may be (a deck is a few kB; these stop hostile or broken files fast).
MAX_DECK_BYTES = 1 << 20  # 1 MiB
MAX_DECK_DEPTH = 32  # nesting of mappings / lists
MAX_DECK_NODES = 100_000  # YAML nodes composed, aliases counted every time they are used (alias bombs)


def _grid_divides(res: float) -> bool:
    """``180/res`` and ``360/res`` are integers (to round-off): the grid tiles the sphere."""
    return all(abs(n / res - round(n / res)) < 1e-6 * max(1.0, n / res) for n in (180.0, 360.0))


def _allowed_resolutions(lo: float, hi: float) -> list[float]:
    return [180.0 / k for k in range(1, 2000) if lo <= 180.0 / k <= hi and _grid_divides(180.0 / k)]


def _check_run_dir(run_dir: str, errs: list[str]) -> None:
    """The run directory exists as a writable folder, or can be created (without creating it)."""
    p = Path(run_dir)
    if p.exists():
        if not p.is_dir():
            errs.append(f"run_dir = {run_dir!r}: exists and is not a directory")
        elif not os.access(p, os.W_OK | os.X_OK):
            errs.append(f"run_dir = {run_dir!r}: directory is not writable")
        return
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        errs.append(f"run_dir = {run_dir!r}: cannot be created: {parent} is not a directory")
    elif not os.access(parent, os.W_OK | os.X_OK):
        errs.append(f"run_dir = {run_dir!r}: cannot be created: {parent} is not writable")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (YAML silently keeps the last one) and limits depth and size."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._n_nodes = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        self._depth += 1
        try:
            if self._depth > MAX_DECK_DEPTH:
                raise DeckError([f"line {self.peek_event().start_mark.line + 1}: nested deeper than "
                                 f"{MAX_DECK_DEPTH} levels"])
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._n_nodes += 1
        if self._n_nodes > MAX_DECK_NODES:
            raise DeckError([f"line {node.start_mark.line + 1}: more than {MAX_DECK_NODES} YAML nodes "
                             f"(an alias bomb?); a deck is a few dozen keys"])
        return node

    def get_single_node(self) -> Any:  # noqa: D102
        node = super().get_single_node()
        if node is not None:
            n = _expanded_size(node, {})
            if n > MAX_DECK_NODES:
                raise DeckError([f"line {node.start_mark.line + 1}: the deck expands to {n:.3g} values through "
                                 f"aliases (limit {MAX_DECK_NODES}; an alias bomb?)"])
        return node


def _expanded_size(node: Any, memo: dict[int, float]) -> float:
    """Number of values ``node`` becomes once every alias is expanded (shared nodes counted each time)."""
    k = id(node)
    if k in memo:
        return memo[k]
    memo[k] = 1.0  # a recursive alias counts once (SafeLoader refuses it anyway)
    if isinstance(node, yaml.SequenceNode):
        n = 1.0 + sum(_expanded_size(c, memo) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1.0 + sum(_expanded_size(kn, memo) + _expanded_size(vn, memo) for kn, vn in node.value)
    else:
        n = 1.0
    memo[k] = n
    return n


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise DeckError([f"line {key_node.start_mark.line + 1}: a key must be a plain name, "
                             f"got {type(key).__name__}"])
        if key in seen:
            raise DeckError([f"line {key_node.start_mark.line + 1}: duplicate key {key!r}"])
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) reads ``1e9`` and ``1.0e9`` (no sign in the exponent) as strings; YAML 1.2 and every
# scientist read them as numbers.  Resolve them as floats (the YAML 1.2 core-schema float pattern).
_UniqueKeyLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_deck(path: str | os.PathLike, run_dir: str | None = None) -> dict:
    """Read, validate and resolve the deck at ``path``.

    Parameters
    ----------
    path : the YAML deck
    run_dir : overrides the deck's ``run_dir`` (the ``--run-dir`` option of every stage)

    Returns
    -------
    dict
        the resolved deck (defaults filled, paths absolute), plus ``_deck_path`` and ``_deck_sha256``.
    """
    p = Path(path)
    if not p.is_file():
        raise DeckError([f"{path}: deck file not found"])
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_DECK_BYTES + 1)
    except OSError as e:
        raise DeckError([f"{path}: cannot read the deck ({e.strerror})"]) from None
    if len(raw) > MAX_DECK_BYTES:
        raise DeckError([f"{path}: larger than {MAX_DECK_BYTES // 1024} KiB; a deck is a few kB of YAML"])
    if b"\0" in raw:
        nul = raw.index(b"\0")
        raise DeckError([f"{path}: binary data (NUL byte at {nul}); a deck is YAML text"])
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (SafeLoader subclass)
    except DeckError as e:
        raise DeckError([f"{path}: {m}" for m in e.problems]) from None
    except UnicodeDecodeError as e:
        raise DeckError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start})"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DeckError([f"{path}: {where}invalid YAML: {what}"]) from None
    except RecursionError:
        raise DeckError([f"{path}: nested too deeply"]) from None
    except (TypeError, ValueError, OverflowError) as e:  # e.g. unhashable keys deep inside a value
        raise DeckError([f"{path}: invalid YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}"]) \
            from None
    if run_dir is not None:
        if not isinstance(data, dict):
            data = {}
        data = dict(data)
        data["run_dir"] = str(Path(run_dir).resolve())
    deck = validate_deck(data, source=str(path), base=p.resolve().parent)
    deck["_deck_path"] = str(p.resolve())
    deck["_deck_sha256"] = hashlib.sha256(raw).hexdigest()
    return deck


def deck_hash(deck: dict) -> str:
    """SHA-256 of the resolved deck (without the run directory), for reuse checks between runs."""
    d = {k: v for k, v in deck.items() if not k.startswith("_") and k != "run_dir"}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def schema_text(schema: S = SCHEMA, prefix: str = "") -> list[str]:
    """Human-readable listing of every key, its type, default and allowed values."""
    lines = []
    for key, spec in schema.fields.items():
        where = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, S):
            lines.append(f"{where}:  # {spec.doc}" if spec.doc else f"{where}:")
            lines += schema_text(spec, where)
            continue
        kind = f"list of {spec.item}" if spec.kind == "list" else spec.kind
        bits = [kind]
        rng = _range_text(spec)
        if rng:
            bits.append(rng)
        if spec.choices:
            bits.append("one of " + "|".join(map(str, spec.choices)))
        if spec.nullable:
            bits.append("or null")
        default = "REQUIRED" if spec.default is REQUIRED else repr(spec.default)
        lines.append(f"  {where}: {default}  ({', '.join(bits)}){'  -- ' + spec.doc if spec.doc else ''}")
    return lines
