"""Comparing run files in tests: every dataset of an HDF5 file, and byte equality of two files' datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["assert_same_datasets", "datasets"]


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by path."""
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def assert_same_datasets(a: Path, b: Path) -> None:
    """The two files hold the same datasets with the same dtype, shape and bytes (attributes aside)."""
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    for k in da:
        x, y = np.asarray(da[k]), np.asarray(db[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), f"{k} differs"
