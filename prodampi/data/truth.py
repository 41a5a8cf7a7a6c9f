"""Known "true" parameter fields of the synthetic world (``world.md`` §7).

For every model parameter k and valid cell x::

    u_k(x) = 0.05 + 0.90 sigmoid(a_k + b_k g_k(z(x)))        (normalised, in (0.05, 0.95))
    theta_k(x) = lo_k + u_k(x) (hi_k - lo_k)                  (physical, prior bounds of the model's table)

``z`` are standardised covariates (fixed centring and scaling constants, :data:`DRIVERS`); ``g_k`` is a fixed
random smooth map - a frozen 2-layer tanh net with 8 units on 4-6 drivers drawn per parameter, plus an
optional physically motivated linear part - standardised to zero mean and unit SD over the valid cells.  A
few parameters also depend on a smooth *hidden* field that is not among the 60 covariates, capping the skill
any covariate-based predictor can reach.  ``b_k`` sets the spatial SD of ``u_k`` by identifiability class:
strong 0.17, default 0.10, weak 0.07, near-constant 0.015 (:data:`SD_CLASSES`).

The design tables (:data:`CLM5_DESIGN`, :data:`COMPAS_DESIGN`) are keyed by parameter name; a parameter
missing from a table gets the default class, mean 0.5 and no linear part, so a model with a new parameter
table still gets a valid truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .random_fields import rng_for
from .synthetic_profiles import PROFILE_TRUTH_KEYS

SD_CLASSES: dict[str, float] = {"strong": 0.17, "default": 0.10, "weak": 0.07, "const": 0.015}
"""Target spatial SD of the normalised true parameter per identifiability class."""

#: Standardisation of the drivers: name -> (covariate or derived quantity, centre, scale)
DRIVERS: dict[str, tuple[str, float, float]] = {
    "temp": ("BIO1", 10.0, 12.0),
    "temp_dev": ("absdev_BIO1", 10.0, 12.0),
    "precip": ("log_BIO12", 6.3, 0.9),
    "clay": ("Clay_Content_0cm", 25.0, 12.0),
    "ph": ("pH_Water_0cm", 65.0, 11.0),
    "npp": ("log_cesm2_npp", np.log(500.0 / 3.1536e7), 0.6),
    "elev": ("Elevation", 600.0, 700.0),
    "sand": ("Sand_Content_0cm", 40.0, 22.0),
    "season": ("BIO4", 700.0, 500.0),
    "hidden": ("hidden", 0.0, 1.0),
}
_OBSERVED = tuple(k for k in DRIVERS if k not in ("hidden", "temp_dev"))


@dataclass(frozen=True)
class ParamDesign:
    """Design of one parameter's true field.

    Attributes
    ----------
    sd_class : str
        Key of :data:`SD_CLASSES`.
    mean_u : float
        Normalised value at g = 0 (the field's centre), in (0.05, 0.95).
    linear : dict
        Driver name -> weight of a linear term added to the random net before standardisation.
    hidden : float
        Weight of the hidden (non-covariate) field, 0 = none.
    """

    sd_class: str = "default"
    mean_u: float = 0.5
    linear: dict[str, float] = field(default_factory=dict)
    hidden: float = 0.0


CLM5_DESIGN: dict[str, ParamDesign] = {
    "diffus": ParamDesign("weak", 0.35),
    "cryo": ParamDesign("weak", 0.4),
    "q10": ParamDesign("strong", 0.3, {"temp": -0.8}),
    "efolding": ParamDesign("strong", 0.8, {"precip": 0.5, "temp": 0.3}),
    "taucwd": ParamDesign("weak", 0.45),
    "taul1": ParamDesign("weak", 0.5),
    "taul2": ParamDesign("weak", 0.5),
    "tau4s1": ParamDesign("default", 0.3),
    "tau4s2": ParamDesign("strong", 0.24, {"temp": -1.2, "clay": 0.4}),
    "tau4s3": ParamDesign("strong", 0.28, {"temp": -1.3, "clay": 0.4}, hidden=0.8),
    "fl1s1": ParamDesign("const", 0.5),
    "fl2s1": ParamDesign("default", 0.5),
    "fl3s2": ParamDesign("default", 0.5),
    "fs1s2": ParamDesign("default", 0.5, {"clay": 0.6}),
    "fs1s3": ParamDesign("weak", 0.3),
    "fs2s1": ParamDesign("default", 0.5, hidden=0.8),
    "fs2s3": ParamDesign("weak", 0.2),
    "fs3s1": ParamDesign("default", 0.5),
    "fcwdl2": ParamDesign("const", 0.5),
    "w-scaling": ParamDesign("strong", 0.65, {"precip": -0.7}),
    "beta": ParamDesign("strong", 0.7, {"temp": 0.5, "precip": -0.5}),
}
"""CLM5 design (``clm5.md`` §2 names); strong: beta, efolding, w-scaling, q10, tau4s2, tau4s3."""

COMPAS_DESIGN: dict[str, ParamDesign] = {
    "bio": ParamDesign("weak", 0.35),
    "cryo": ParamDesign("weak", 0.4),
    "q10": ParamDesign("weak", 0.2, {"temp": 0.5}),
    "w_scaling": ParamDesign("default", 0.65, {"precip": -0.6}),
    "tau4cwd": ParamDesign("weak", 0.45),
    "tau4l1": ParamDesign("weak", 0.5),
    "tau4l2": ParamDesign("weak", 0.5),
    "tau4s1": ParamDesign("default", 0.3),
    "tau4s2_death": ParamDesign("weak", 0.3, {"temp": 0.5}, hidden=0.8),
    "tau4s2_enz": ParamDesign("default", 0.6),
    "tau4s3": ParamDesign("const", 0.5),
    "tau4s4": ParamDesign("strong", 0.25, {"temp": -0.2}),
    "mm_const_assim": ParamDesign("const", 0.44),
    "mm_const_decom": ParamDesign("strong", 0.25, {"clay": 0.4, "temp": -0.6, "temp_dev": 0.3}),
    "fcwdl2": ParamDesign("const", 0.5),
    "pl1s1": ParamDesign("weak", 0.55),
    "pl2s1": ParamDesign("weak", 0.7),
    "pl3s4": ParamDesign("default", 0.65, hidden=0.8),
    "l1_cue": ParamDesign("default", 0.3),
    "l2l3_cue": ParamDesign("default", 0.6),
    "mic_cue": ParamDesign("strong", 0.3, {"temp": -0.6, "ph": 0.3}, hidden=0.5),
    "pdeath2soc": ParamDesign("default", 0.6),
    "beta": ParamDesign("strong", 0.7, {"temp": 0.5, "precip": -0.5}),
}
"""COMPAS design (``compas.md`` §2 names); strong: beta, mic_cue, mm_const_decom, tau4s4.  ``tau4s3`` (#11) is
unused by the model as coded: its field is near-constant and recorded as unidentifiable.  ``mm_const_assim``
is near-constant too: as coded its normalised value also sets the enzyme turnover time on a log scale over
three decades (``compas.md`` Q1), and any spatial spread pushes many cells out of the model's narrow valid
region (negative pools or the 10:1 soil-C/MIC rule).  The centres were chosen so that the centre vector is
valid in (almost) every cell, including cold permafrost cells where the 10:1 rule binds (low Q10 and fast
microbial death in the cold), and so that the customary run (mean parameters over the profile sites) holds
~0.87 of the true total as in the paper (1,308 vs 1,507 Pg C).  COMPAS SOC scales with the environmental
scalar (``compas.md`` §5.3), so its true SOC is low in cold regions whatever the parameters."""

DESIGNS: dict[str, dict[str, ParamDesign]] = {"clm5": CLM5_DESIGN, "compas": COMPAS_DESIGN}

UNIDENTIFIABLE: dict[str, tuple[str, ...]] = {"clm5": (), "compas": ("tau4s3",)}
"""Parameters that cannot affect the model output as coded (recorded in provenance)."""


def driver_matrix(covariates: dict[str, np.ndarray], hidden: np.ndarray) -> np.ndarray:
    """Standardised drivers (n, len(DRIVERS)) from covariate columns and the hidden field.

    Parameters
    ----------
    covariates : dict
        Covariate name -> (n,) values (units of :data:`prodampi.data.covariates.COVARIATE_UNITS`).
    hidden : (n,) array
        Hidden smooth field (dimensionless, SD ~1).
    """
    cols = []
    for src, centre, scale in DRIVERS.values():
        if src == "hidden":
            x = hidden
        elif src.startswith("absdev_"):  # |x - centre| / scale - 0.8: U-shaped (temperate low, both ends high)
            cols.append(np.abs(np.asarray(covariates[src[7:]], dtype=np.float64) - centre) / scale - 0.8)
            continue
        elif src.startswith("log_"):
            x = np.log(np.maximum(covariates[src[4:]], 1e-30))
        else:
            x = covariates[src]
        cols.append((np.asarray(x, dtype=np.float64) - centre) / scale)
    return np.column_stack(cols)


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


@dataclass
class TruthMap:
    """Frozen map from drivers to the standardised field ``g_k`` of every parameter of one model.

    Built by :func:`build_truth_map`; pure given (seed, model, names).
    """

    model: str
    names: tuple[str, ...]
    designs: tuple[ParamDesign, ...]
    nets: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]  # (cols, W1, b1, w2)
    a: np.ndarray  # (P,) logit centres
    b: np.ndarray  # (P,) slopes
    g_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_sd: np.ndarray = field(default_factory=lambda: np.ones(0))

    def raw_g(self, z: np.ndarray) -> np.ndarray:
        """Unstandardised g (n, P) for standardised drivers ``z`` (n, len(DRIVERS))."""
        keys = list(DRIVERS)
        out = np.empty((z.shape[0], len(self.names)))
        for k, (design, (cols, w1, b1, w2)) in enumerate(zip(self.designs, self.nets)):
            h = np.tanh(z[:, cols] @ w1.T + b1) @ w2
            lin = sum(wt * z[:, keys.index(d)] for d, wt in design.linear.items()) if design.linear else 0.0
            hid = design.hidden * z[:, keys.index("hidden")] if design.hidden else 0.0
            out[:, k] = h + lin + hid
        return out

    def fit_standardisation(self, z: np.ndarray) -> None:
        """Set the mean and SD of g over the cells ``z`` (the valid cells of the world)."""
        g = self.raw_g(z)
        self.g_mean = g.mean(axis=0)
        self.g_sd = np.where(g.std(axis=0) > 0, g.std(axis=0), 1.0)

    def normalized(self, z: np.ndarray, shift: np.ndarray | None = None, eps: np.ndarray | None = None,
                   ) -> np.ndarray:
        """Normalised true parameters u (n, P) in (0.05, 0.95).

        Parameters
        ----------
        z : (n, D) array
            Standardised drivers.
        shift : (P,) array, optional
            Added to the logit centres ``a`` (calibration).
        eps : (n, P) array, optional
            Added to the standardised g (cell-level perturbation used when resampling invalid cells).
        """
        g = (self.raw_g(z) - self.g_mean) / self.g_sd
        if eps is not None:
            g = g + eps
        a = self.a if shift is None else self.a + shift
        return 0.05 + 0.9 / (1.0 + np.exp(-(a + self.b * g)))


def build_truth_map(model: str, names: list[str] | tuple[str, ...], seed: int,
                    designs: dict[str, ParamDesign] | None = None) -> TruthMap:
    """Frozen random truth map for ``model`` with parameter ``names`` (order of the model's table).

    Parameters
    ----------
    model : str
        Model name (``"clm5"``, ``"compas"``, ...) - selects the design table and keys the random nets.
    names : sequence of str
        Parameter names in the model's order.
    seed : int
        World seed.
    designs : dict, optional
        Overrides :data:`DESIGNS` [model].

    Returns
    -------
    TruthMap
        Call :meth:`TruthMap.fit_standardisation` on the valid cells before :meth:`TruthMap.normalized`.
    """
    table = DESIGNS.get(model, {}) if designs is None else designs
    des, nets, a, b = [], [], [], []
    for i, name in enumerate(names):
        d = table.get(name, ParamDesign())
        rng = rng_for(seed, f"truth:{model}:{name}", i)
        n_drv = int(rng.integers(4, 7))
        cols = np.sort(rng.choice(len(_OBSERVED), size=n_drv, replace=False))
        w1 = rng.standard_normal((8, n_drv)) * 0.8
        b1 = rng.standard_normal(8) * 0.5
        w2 = rng.standard_normal(8) / np.sqrt(8.0)
        nets.append((cols, w1, b1, w2))
        mu = (d.mean_u - 0.05) / 0.9
        a.append(_logit(mu))
        slope = mu * (1.0 - mu) * 0.9
        b.append(SD_CLASSES[d.sd_class] / slope)
        des.append(d)
    return TruthMap(model=model, names=tuple(names), designs=tuple(des), nets=tuple(nets),
                    a=np.array(a), b=np.array(b))


def profile_truth_at_layers(p: dict[str, np.ndarray], rows: np.ndarray, prof: Any) -> dict[str, np.ndarray]:
    """Noise-free SOC (g C m-3) at the layers of screened profiles, by the world's (profile, top, bottom).

    Each kept layer is matched to the world's layer of the same profile row with the same top and bottom
    (cm); a layer without a match (none is expected: screening keeps the world's bounds) gets NaN.

    Parameters
    ----------
    p : dict of arrays
        The world's profiles (``World.to_arrays()["profiles"]``): ``n_layers`` (P,), ``top_cm`` /
        ``bottom_cm`` (P, Lmax) cm, and the truths of :data:`~prodampi.data.synthetic_profiles.PROFILE_TRUTH_KEYS`
        (P, Lmax) g C m-3.
    rows : (K,) int array
        Row of ``p`` of each kept profile.
    prof : Profiles
        The K kept profiles (:class:`prodampi.data.profiles.Profiles`): ``offsets`` (K+1,), ``top_cm`` and
        ``bottom_cm`` (L,) cm.

    Returns
    -------
    dict of (L,) arrays
        ``truth_g_m3`` (shared truth), ``truth_clm5_g_m3``, ``truth_compas_g_m3`` (g C m-3) per kept layer;
        empty arrays when there are no kept layers.
    """
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
            for key in PROFILE_TRUTH_KEYS.values()}
