"""The stage registry: the pipeline's stages, the run files each needs and makes, in order.

Stages meet only through run files (contracts in :mod:`prodampi.io`); this table is the one place that says
which stage makes which file.  The CLI checks a stage's prerequisites from it before starting the stage
(:func:`check_prerequisites`: exit 3 with one line naming the missing file and the command that makes it),
``prodampi run`` walks it in order, and ``prodampi status`` reports from it.

A stage whose ``target`` is None is declared (so its files and prerequisites are known) but not implemented
in this version of prodampi.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from ..errors import StageError


@dataclass(frozen=True)
class RunFile:
    """A file (or folder) in the run directory that one stage makes and others read.

    Attributes
    ----------
    key : short name used in :attr:`Stage.needs` / :attr:`Stage.makes`
    pattern : name in the run directory; ``{model}`` expands to every model of the deck
    contract : ``"module:function"`` that returns why an existing file cannot be used (or None); None when
        the contract is not written yet (then the file only has to exist)
    doc : one line
    deck_key : ``"module:function"`` giving, from the deck, the key the file must carry (root attribute
        ``key_attr``); None when the file carries none
    key_attr : the root attribute that holds the deck key
    """

    key: str
    pattern: str
    contract: str | None
    doc: str
    deck_key: str | None = None
    key_attr: str = ""

    def paths(self, run_dir: str | Path, deck: dict) -> list[Path]:
        """The concrete paths for this deck (one per model when the pattern names ``{model}``)."""
        run_dir = Path(run_dir)
        if "{model}" in self.pattern:
            return [run_dir / self.pattern.format(model=m) for m in deck["models"]]
        return [run_dir / self.pattern]

    def expected_key(self, deck: dict | None) -> str | None:
        """The deck key the file must carry for ``deck`` (None: no deck given or the file carries none)."""
        if deck is None or self.deck_key is None:
            return None
        mod, fn = self.deck_key.split(":")
        try:
            return getattr(import_module(mod), fn)(deck)
        except KeyError:  # a partial deck (tests, ``prodampi verify RUN_DIR``): no key to compare
            return None

    def problem(self, path: Path, deck: dict | None = None) -> str | None:
        """Why ``path`` cannot be used (``"missing"``, ``"incomplete ..."``, a dataset failing its checksum,
        made by another deck when ``deck`` is given), or None."""
        if self.contract is None:
            return None if path.exists() else "missing"
        mod, fn = self.contract.split(":")
        check: Callable[..., str | None] = getattr(import_module(mod), fn)
        key = self.expected_key(deck)
        return check(path) if key is None else check(path, key=key)


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    Attributes
    ----------
    name : the CLI command (``prodampi <name> DECK``)
    target : ``"module:function"`` taking a :class:`~prodampi.stages.common.StageContext`; None = not
        available in this version
    needs : keys of the run files it reads
    makes : keys of the run files it writes
    doc : one line
    """

    name: str
    target: str | None
    needs: tuple[str, ...]
    makes: tuple[str, ...]
    doc: str

    @property
    def available(self) -> bool:
        """Implemented in this version: its module exists.  Found, not imported: asking must stay cheap (the
        learn stage's module pulls in torch, seconds of import, and a signal arriving in the middle of a
        third-party import can leave that package half initialised)."""
        if self.target is None:
            return False
        from importlib.util import find_spec

        try:
            return find_spec(self.target.split(":")[0]) is not None
        except (ImportError, ValueError):
            return False


RUN_FILES: dict[str, RunFile] = {f.key: f for f in (
    RunFile("inputs", "inputs.h5", "prodampi.io.inputs:check_inputs",
            "profiles, ledger, site forcing and covariates, grid", "prodampi.stages.prepare:prepare_key",
            "prepare_key"),
    RunFile("posterior", "posterior.h5", "prodampi.stages.assimilate:check_posterior_file",
            "per-site posterior samples and summaries (ArviZ groups)", "prodampi.stages.assimilate:posterior_key",
            "assimilate_key"),
    RunFile("ensemble", "ensemble.h5", "prodampi.stages.learn:check_ensemble_file",
            "NN ensemble: members, splits, predicted parameters", "prodampi.stages.learn:ensemble_key",
            "learn_key"),
    RunFile("maps", "maps_{model}.nc", None, "CF netCDF maps of SOC and its components, per model"),
    RunFile("report", "report", None, "statistics, latitudinal tables, figures, report.md"),
)}

#: the pipeline, in order
STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("prepare", "prodampi.stages.prepare:run", (), ("inputs",),
          "profiles, forcing and covariates -> inputs.h5"),
    Stage("assimilate", "prodampi.stages.assimilate:run", ("inputs",), ("posterior",),
          "per-profile MCMC -> posterior.h5"),
    Stage("learn", "prodampi.stages.learn:run", ("posterior", "inputs"), ("ensemble",),
          "neural-network ensemble -> ensemble.h5"),
    Stage("map", None, ("ensemble", "inputs"), ("maps",), "global maps per model"),
    Stage("report", None, ("maps",), ("report",), "statistics and figures"),
)}


def maker(key: str) -> Stage:
    """The stage that makes run file ``key``."""
    for s in STAGES.values():
        if key in s.makes:
            return s
    raise KeyError(f"no stage makes run file {key!r}")  # pragma: no cover - the table covers every file


def available_stages() -> list[str]:
    """Stages this version implements, in pipeline order."""
    return [name for name, s in STAGES.items() if s.available]


def stage_command(stage: str, deck_arg: str, run_dir_arg: str | None = None) -> str:
    """The command line that runs ``stage`` on the same deck and run directory."""
    return f"prodampi {stage} {deck_arg}" + (f" --run-dir {run_dir_arg}" if run_dir_arg else "")


def missing_prerequisites(stage: str, deck: dict, made: set[str] = frozenset()) -> list[tuple[Path, str, str]]:
    """The run files ``stage`` needs that cannot be used now.

    Parameters
    ----------
    stage : stage name
    deck : the resolved deck (``run_dir``, ``models``)
    made : run-file keys that earlier stages of the same job will make (``prodampi run``)

    Returns
    -------
    list of (path, why, maker stage)
    """
    out = []
    for key in STAGES[stage].needs:
        if key in made:
            continue
        rf = RUN_FILES[key]
        for p in rf.paths(deck["run_dir"], deck):
            why = rf.problem(p, deck)
            if why is not None:
                out.append((p, why, maker(key).name))
    return out


def check_prerequisites(stages: list[str], deck: dict, deck_arg: str, run_dir_arg: str | None = None) -> None:
    """Check, before anything runs, that each stage of ``stages`` (in order) can start.

    A run file a stage needs must be usable now or be made by an earlier stage of the list.  Then every
    stage must be implemented.

    Raises
    ------
    StageError
        (exit 3) with one line: the stage, the file it needs, why it cannot be used and the command that
        makes it; or that the stage is not available in this version.
    """
    from .. import __version__

    made: set[str] = set()
    for name in stages:
        if name not in STAGES:
            raise StageError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
        miss = missing_prerequisites(name, deck, made)
        if miss:
            path, why, by = miss[0]
            what = "which is missing" if why == "missing" else f"which is {why}"
            raise StageError(f"{name} needs {path}, {what}; make it with: "
                             f"{stage_command(by, deck_arg, run_dir_arg)}")
        made |= set(STAGES[name].makes)
    for name in stages:
        if not STAGES[name].available:
            raise StageError(f"stage {name!r} is not available in prodampi {__version__} "
                             f"(available: {', '.join(available_stages())})")


def file_states(deck: dict) -> dict[str, dict[str, str]]:
    """For each stage: ``{path: "ok" | why not}`` of the run files it makes (``prodampi status``)."""
    out: dict[str, dict[str, str]] = {}
    for name, s in STAGES.items():
        states: dict[str, str] = {}
        for key in s.makes:
            rf = RUN_FILES[key]
            for p in rf.paths(deck["run_dir"], deck):
                states[str(p)] = rf.problem(p, deck) or "ok"
        out[name] = states
    return out


def made_file_digests(stage: str, deck: dict) -> dict[str, str]:
    """``{file name: digest}`` of the run files ``stage`` makes, as they are now: a digest of each file's
    stored per-dataset checksums and deck key (:func:`prodampi.io.h5file.file_digest`).  The stage writer
    records it in ``<stage>.json`` as ``"files"``; ``prodampi status`` compares it with the files, so a file
    replaced after its summary was written is reported.  Files that are missing or have no contract are
    left out."""
    from ..io.h5file import file_digest

    out: dict[str, str] = {}
    for key in STAGES[stage].makes:
        rf = RUN_FILES[key]
        if rf.contract is None:
            continue
        for p in rf.paths(deck["run_dir"], deck):
            if p.is_file():
                d = file_digest(p, rf.key_attr)
                if d is not None:
                    out[p.name] = d
    return out
