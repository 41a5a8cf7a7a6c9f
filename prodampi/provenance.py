"""Provenance recorded in every output: versions, git revision, deck hash, seed, rank count, host, time."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
from importlib import import_module
from pathlib import Path
from typing import Any

from . import __version__


def git_revision() -> str | None:
    """``git describe --always --dirty`` of the source tree, or None outside a git checkout."""
    src = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    """Versions of the libraries that affect results (only those already importable)."""
    out = {"prodampi": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "h5py", "mpi4py", "netCDF4", "torch", "yaml"):
        try:
            mod = __import__(name)
            out[name] = str(getattr(mod, "__version__", "?"))
        except Exception:  # noqa: BLE001 - optional dependency
            continue
    return out


def provenance(deck: dict | None = None, n_ranks: int = 1, extra: dict | None = None) -> dict[str, Any]:
    """A provenance record (JSON-serialisable)."""
    from .deck import deck_hash

    rec: dict[str, Any] = {
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "n_ranks": int(n_ranks),
        "git_revision": git_revision(),
        "versions": versions(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    if deck is not None:
        rec.update(deck_path=deck.get("_deck_path"), deck_sha256=deck.get("_deck_sha256"),
                   deck_hash=deck_hash(deck), seed=deck.get("seed"), model_options=model_options(deck))
    if extra:
        rec.update(extra)
    return rec


def model_options(deck: dict) -> dict[str, Any]:
    """The options of every model of the deck: the preset named in ``model_options`` and, where the model
    has an options record, every field of it (``{"clm5": {"preset": "paper", "options": {...}}, ...}``)."""
    out: dict[str, Any] = {}
    chosen = deck.get("model_options") or {}
    for name in deck.get("models") or ():
        preset = (chosen.get(name) or {}).get("preset")
        rec: dict[str, Any] = {"preset": preset}
        try:
            from .soil import MODELS

            mod, cls = MODELS[name].split(":")
            opts = getattr(getattr(import_module(mod), cls), "options_class", None)
            if opts is not None and preset is not None:
                rec["options"] = opts.preset(preset).as_dict()
        except (ImportError, KeyError, AttributeError, ValueError) as e:  # recorded, never fatal
            rec["options_error"] = f"{type(e).__name__}: {e}"
        out[name] = rec
    return out


def write_json_atomic(path: str | os.PathLike, obj: Any, before_replace: Any = None) -> None:
    """Write ``obj`` as JSON to ``path`` atomically through :func:`prodampi.io.safefile.write_json_atomic`
    (exclusive random temp file in the same folder, never following a symlink, fsync, os.replace, folder fsync).

    ``before_replace``, if given, is called between the fsync and the rename (fault-injection tests).
    """
    from .io.safefile import write_json_atomic as _write

    _write(path, obj, before_replace=before_replace, default=json_default)


def json_default(o: Any) -> Any:
    """``json.dumps`` default for numpy scalars and arrays (anything else as ``str``)."""
    try:
        import numpy as np

        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)
