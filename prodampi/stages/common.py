"""What every stage shares: its context and its summary file ``<run_dir>/<stage>.json``.

The pipeline order and what each stage needs and makes are in :mod:`prodampi.stages.registry`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from ..errors import ProdampiError, StageError
from ..io.safefile import clean_stale_temps
from ..parallel import lock
from ..parallel.comm import World, setup_logging
from ..parallel.faults import check_fault_spec
from ..parallel.signals import install as install_signals
from ..provenance import provenance, write_json_atomic
from .registry import RUN_FILES, STAGES, made_file_digests

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What a stage function receives.

    Attributes
    ----------
    deck : the resolved deck
    world : the MPI world
    run_dir : the run directory (exists)
    stage : stage name
    timings : wall-clock seconds per named step, filled with :meth:`timer`
    """

    deck: dict
    world: World
    run_dir: Path
    stage: str
    timings: dict[str, float] = field(default_factory=dict)

    def timer(self, name: str) -> _Timer:
        """``with ctx.timer("read"): ...`` records the step's wall time in the stage summary."""
        return _Timer(self.timings, name)


class _Timer:
    def __init__(self, store: dict, name: str) -> None:
        self.store, self.name = store, name

    def __enter__(self) -> _Timer:
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.store[self.name] = self.store.get(self.name, 0.0) + time.monotonic() - self.t0


def stage_json_path(run_dir: Path, stage: str) -> Path:
    """``<run_dir>/<stage>.json``."""
    return Path(run_dir) / f"{stage}.json"


def _take_run_dir(run_dir: Path) -> None:
    """Rank 0: refuse a foreign directory, take the run-directory lock (held until the process ends, so
    ``prodampi run`` holds it across its stages), then remove temporary files of dead runs."""
    try:
        # stage summaries (<stage>.json) and the HDF5 run files (posterior.h5, ensemble.h5) count as prodampi's
        # own in a directory without a marker (a posterior copied in beside its inputs.h5)
        stems = set(STAGES) | {Path(f.pattern).stem for f in RUN_FILES.values() if "{" not in f.pattern}
        started = lock.acquire(run_dir, stems)
    except OSError as e:
        raise StageError(f"{run_dir}: run directory cannot be used ({e.strerror or e})") from None
    for p in clean_stale_temps(run_dir, older_than=started):
        log.info("removed stale temporary file %s", p)


def run_stage(stage: str, deck: dict, world: World) -> dict[str, Any]:
    """Run one stage: logging, the stage function, then the summary file (written atomically by rank 0)."""
    target = STAGES[stage].target
    if target is None:
        raise StageError(f"stage {stage!r} is not available in this version")
    run_dir = Path(deck["run_dir"])
    install_signals()
    world.run_collective(check_fault_spec)  # a malformed PRODAMPI_FAULT: one error line at the start, not silence
    world.run_collective(_take_run_dir, run_dir)
    setup_logging(world, run_dir, stage, deck["logging"]["level"], deck["logging"]["per_rank_files"])
    mod, fn = target.split(":")
    ctx = StageContext(deck=deck, world=world, run_dir=run_dir, stage=stage)
    log.info("stage %s: run_dir=%s ranks=%d", stage, run_dir, world.size)
    t0 = time.monotonic()
    try:
        summary = getattr(import_module(mod), fn)(ctx)
    except ProdampiError as e:
        if world.is_root:  # a stage refused its inputs: say so in <stage>.json, with its funnel when it has one
            write_json_atomic(stage_json_path(run_dir, stage), {
                "stage": stage, "status": "failed", "error": str(e), "summary": getattr(e, "summary", None),
                "provenance": provenance(deck, world.size)})
        raise
    ctx.timings["total"] = time.monotonic() - t0
    record = {
        "stage": stage,
        "status": "done",
        "summary": summary,
        "timings_s": {k: round(v, 4) for k, v in ctx.timings.items()},
        "provenance": provenance(deck, world.size),
        "deck": {k: v for k, v in deck.items() if not k.startswith("_")},
        # digests of the run files this stage made: `prodampi status` compares them with the files, so this
        # summary can never silently describe another file than the one on disk
        "files": made_file_digests(stage, deck) if world.is_root else {},
    }
    if world.is_root:
        write_json_atomic(stage_json_path(run_dir, stage), record)
    world.barrier()
    log.info("stage %s done in %.2f s", stage, ctx.timings["total"])
    return record
