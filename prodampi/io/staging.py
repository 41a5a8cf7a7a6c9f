"""The assimilate stage's restart files (``<run_dir>/assimilate.parts/``): a contract like the run files.

Layout (:data:`FORMAT_VERSION` 1)::

    assimilate.parts/
      key.json                          the assimilate key the parts belong to (deck + inputs); a different
                                        key makes the stage discard the folder and start over
      <model>/batch_<b>.npz             a finished batch: the kernel results, the summary fields and
                                        ``rows`` (the batch's profile rows); its existence is the ledger entry
      <model>/batch_<b>.state.npz       the in-flight sampler state of batch b (chain states, covariance
                                        accumulators, counters, RNG positions), rewritten every
                                        ``checkpoint_every_s`` and on SIGTERM / SIGUSR1

Every file is written to a temporary name and renamed (:func:`prodampi.io.safefile.atomic_output`), so a
kill leaves the previous version or none; a finished batch's state file is removed after its result file
exists.  Each ``.npz`` holds plain arrays (no pickles) plus ``__meta__``, a JSON string with
``format_version``, ``key``, ``model``, ``batch`` and ``kind``.  When the stage has written ``posterior.h5``
it removes the folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .safefile import atomic_output

__all__ = ["FORMAT_VERSION", "PARTS_DIR", "batch_path", "prepare_parts", "read_part", "state_path", "write_part"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PARTS_DIR = "assimilate.parts"


def prepare_parts(parts: Path, key: str) -> None:
    """Make the restart folder ``parts`` for ``key``: a folder of another key (``key.json``: another deck or
    version) is discarded first, so its files are never mixed with this run's.  Used by every stage that
    stages parts (``assimilate.parts/``, ``learn.parts/``)."""
    from .safefile import write_json_atomic

    parts = Path(parts)
    kf = parts / "key.json"
    if parts.exists():
        try:
            have = json.loads(kf.read_text()).get("key")
        except (OSError, ValueError):
            have = None
        if have != key:
            log.info("%s belongs to another deck or version; starting over", parts)
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not kf.exists():
        write_json_atomic(kf, {"key": key})


def batch_path(parts: Path, model: str, batch: int) -> Path:
    """``<parts>/<model>/batch_<b>.npz`` (finished batch)."""
    return Path(parts) / model / f"batch_{batch:06d}.npz"


def state_path(parts: Path, model: str, batch: int) -> Path:
    """``<parts>/<model>/batch_<b>.state.npz`` (in-flight sampler state)."""
    return Path(parts) / model / f"batch_{batch:06d}.state.npz"


def _plain(v: Any) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype == object:  # strings -> fixed-width unicode (np.load without pickles)
        a = np.array([str(x) for x in a.ravel()], dtype=str).reshape(a.shape)
    return a


def write_part(path: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``arrays`` + ``meta`` atomically to ``path`` (an ``.npz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: _plain(v) for k, v in arrays.items()}
    payload["__meta__"] = np.array(json.dumps({**meta, "format_version": FORMAT_VERSION}))
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **payload)
        fh.flush()
        os.fsync(fh.fileno())


def read_part(path: Path, key: str | None = None, names: tuple[str, ...] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """Read a part back; None when it is missing, unreadable, of another version or (``key``) another run.

    ``names``: load only these arrays (an ``.npz`` member is read only when asked for), e.g. ``("rows",)``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            if meta.get("format_version") != FORMAT_VERSION or (key is not None and meta.get("key") != key):
                return None
            wanted = [k for k in z.files if k != "__meta__" and (names is None or k in names)]
            return {k: z[k] for k in wanted}, meta
    except (OSError, ValueError, KeyError):
        return None
