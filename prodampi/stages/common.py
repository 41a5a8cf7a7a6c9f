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

from ..errors import StageError
from ..parallel.comm import World, setup_logging
from ..provenance import provenance, write_json_atomic
from .registry import STAGES

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


def run_stage(stage: str, deck: dict, world: World) -> dict[str, Any]:
    """Run one stage: logging, the stage function, then the summary file (written atomically by rank 0)."""
    target = STAGES[stage].target
    if target is None:
        raise StageError(f"stage {stage!r} is not available in this version")
    run_dir = Path(deck["run_dir"])
    if world.is_root:
        run_dir.mkdir(parents=True, exist_ok=True)
    world.barrier()
    setup_logging(world, run_dir, stage, deck["logging"]["level"], deck["logging"]["per_rank_files"])
    mod, fn = target.split(":")
    ctx = StageContext(deck=deck, world=world, run_dir=run_dir, stage=stage)
    log.info("stage %s: run_dir=%s ranks=%d", stage, run_dir, world.size)
    t0 = time.monotonic()
    summary = getattr(import_module(mod), fn)(ctx)
    ctx.timings["total"] = time.monotonic() - t0
    record = {
        "stage": stage,
        "status": "done",
        "summary": summary,
        "timings_s": {k: round(v, 4) for k, v in ctx.timings.items()},
        "provenance": provenance(deck, world.size),
        "deck": {k: v for k, v in deck.items() if not k.startswith("_")},
    }
    if world.is_root:
        write_json_atomic(stage_json_path(run_dir, stage), record)
    world.barrier()
    log.info("stage %s done in %.2f s", stage, ctx.timings["total"])
    return record
