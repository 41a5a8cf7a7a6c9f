"""The 20-layer CLM5 soil column shared by both models (``clm5.md`` §1, ``compas.md`` §1).

All depths in metres.  Layers are numbered 1..20 in the specs; arrays here are 0-based (index 0 = layer 1).
Layer 21 is kept only because the vertical-transport discretisation reads its node and interface.
"""

from __future__ import annotations

import numpy as np

N_LAYERS: int = 20
"""Number of state layers."""

#: Layer thickness dz (m), layers 1..21.
DZ_M: np.ndarray = np.array(
    [0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.20, 0.24, 0.28, 0.32,
     0.36, 0.40, 0.44, 0.54, 0.64, 0.74, 0.84, 0.94, 1.04, 1.14, 2.39]
)
#: Bottom interface depth zisoi (m) of layers 1..21 (the top of layer 1 is 0 m).
ZISOI_M: np.ndarray = np.array(
    [0.02, 0.06, 0.12, 0.20, 0.32, 0.48, 0.68, 0.92, 1.20, 1.52,
     1.88, 2.28, 2.72, 3.26, 3.90, 4.64, 5.48, 6.42, 7.46, 8.60, 10.99]
)
#: Node depth zsoi (m) of layers 1..21.
ZSOI_M: np.ndarray = np.array(
    [0.01, 0.04, 0.09, 0.16, 0.26, 0.40, 0.58, 0.80, 1.06, 1.36,
     1.70, 2.08, 2.50, 2.99, 3.58, 4.27, 5.06, 5.95, 6.94, 8.03, 9.795]
)
#: Node spacing dz_node_j = zsoi_j - zsoi_{j-1} (m), zsoi_0 = 0, layers 1..21.
DZ_NODE_M: np.ndarray = np.diff(np.concatenate([[0.0], ZSOI_M]))

for _a in (DZ_M, ZISOI_M, ZSOI_M, DZ_NODE_M):
    _a.setflags(write=False)


def layer_bounds_m() -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom depth (m) of the 20 state layers."""
    bottom = ZISOI_M[:N_LAYERS]
    top = np.concatenate([[0.0], bottom[:-1]])
    return top, bottom


def thickness_m() -> np.ndarray:
    """Thickness (m) of the 20 state layers, shape (20,)."""
    return DZ_M[:N_LAYERS]


def nodes_m() -> np.ndarray:
    """Node depth (m) of the 20 state layers, shape (20,)."""
    return ZSOI_M[:N_LAYERS]


def overlap_weights(top_m: float, bottom_m: float) -> np.ndarray:
    """Fraction of each of the 20 layers lying inside ``[top_m, bottom_m]`` (m).

    ``sum(weights * thickness_m() * density)`` is the stock (g C m-2) between the two depths for a density
    profile in g C m-3 that is constant within layers.
    """
    top, bottom = layer_bounds_m()
    ov = np.clip(np.minimum(bottom, bottom_m) - np.maximum(top, top_m), 0.0, None)
    return ov / thickness_m()
