"""Report files of the parameter-recovery experiment: ``recovery_<model>.csv``, ``recovery_<model>.png``.

The rows come from :func:`prodampi.inference.recovery.score_recovery`; this module only writes them (the
table and a figure like the paper's Fig. S3: one scatter panel per parameter, truth vs posterior mean in
normalised [0, 1] space, 1:1 line, 5-95 % posterior whiskers, r in the title) and renders a Markdown table
for the closing note or the README.

Every file is written atomically (:func:`prodampi.io.safefile.atomic_output`).  The figure needs matplotlib,
imported lazily with the non-interactive Agg canvas (no pyplot, no global backend switch); without matplotlib
the CSV is still written and the figure is skipped with a warning.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.recovery import IDENTIFIABLE, METRICS, R_MIN, UNUSED, classify
from ..io.safefile import atomic_output

log = logging.getLogger(__name__)

__all__ = ["CSV_COLUMNS", "csv_name", "png_name", "recovery_markdown", "write_recovery"]

#: columns of ``recovery_<model>.csv``, in order
CSV_COLUMNS: tuple[str, ...] = ("model", "kernel", "index", "name", "class", "identifiable") + METRICS

_CLASS_COLOUR = {"turnover": "#1f77b4", "transfer": "#2ca02c", "environment": "#ff7f0e",
                 "input/transport": "#9467bd", "unused": "#7f7f7f"}


def csv_name(model: str) -> str:
    """File name of the recovery table of ``model``."""
    return f"recovery_{model}.csv"


def png_name(model: str) -> str:
    """File name of the recovery figure of ``model``."""
    return f"recovery_{model}.png"


def _cell(v: Any) -> str:
    """A CSV cell that parses back to the same value (floats in full precision, NaN as ``nan``)."""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return str(v)


def _full_rows(model: str, kernel: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    ident = set(IDENTIFIABLE.get(model, ()))
    out = []
    for r in rows:
        d = {"model": model, "kernel": kernel, "index": r["index"], "name": r["name"],
             "class": r.get("class", classify(model, r["name"])),
             "identifiable": r.get("identifiable", r["name"] in ident)}
        d.update({k: r[k] for k in METRICS})
        out.append(d)
    return out


def _write_csv(path: Path, table: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for d in table:
        w.writerow([_cell(d[c]) for c in CSV_COLUMNS])
    with atomic_output(path) as tmp:
        tmp.write_text(buf.getvalue())


def _fmt(v: float, spec: str = ".2f") -> str:
    return "–" if v is None or not math.isfinite(float(v)) else format(float(v), spec)


def _title_colour(d: dict[str, Any]) -> str:
    """Grey for the unused parameter; for an identifiable one dark green when r >= R_MIN, else red."""
    if d["class"] == "unused":
        return "0.45"
    if d["identifiable"]:
        r = float(d["r"])
        return "#1a7f1a" if math.isfinite(r) and r >= R_MIN else "#c00000"
    return "k"


def _write_png(path: Path, model: str, kernel: str, table: list[dict[str, Any]], truth: np.ndarray,
               mean: np.ndarray, q05: np.ndarray, q95: np.ndarray, names: Sequence[str],
               site_ok: np.ndarray) -> bool:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:  # the figure is optional; the table is the record
        log.warning("matplotlib is not installed: %s not written", path.name)
        return False
    p = len(names)
    ncols = 6 if p > 12 else max(1, min(p, 4))
    nrows = math.ceil(p / ncols)
    fig = Figure(figsize=(2.3 * ncols, 2.45 * nrows + 0.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    n_used = 0
    for j, ax in enumerate(axes.flat):
        if j >= p:
            ax.set_visible(False)
            continue
        d = table[j]
        t, m, lo, hi = truth[:, j], mean[:, j], q05[:, j], q95[:, j]
        ok = site_ok & np.isfinite(t) & np.isfinite(m)
        n_used = max(n_used, int(ok.sum()))
        wok = ok & np.isfinite(lo) & np.isfinite(hi)
        colour = _CLASS_COLOUR.get(d["class"], "k")
        ax.vlines(t[wok], lo[wok], hi[wok], colors=colour, alpha=0.12, linewidths=0.6, zorder=1)
        ax.scatter(t[ok], m[ok], s=5, c=colour, alpha=0.6, linewidths=0, zorder=2)
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, zorder=3)
        ax.axhline(0.5, color="0.6", lw=0.5, ls=":", zorder=0)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=7, length=2)
        mark = "*" if d["identifiable"] else ""
        ax.set_title(f"{j + 1}. {names[j]}{mark}\nr = {_fmt(d['r'])}, cov = {_fmt(d['coverage90'])}",
                     fontsize=8, fontweight="bold" if d["identifiable"] else "normal",
                     color=_title_colour(d))
    for c in range(ncols):  # the lowest visible panel of each column carries the x labels
        rows_c = [r for r in range(nrows) if r * ncols + c < p]
        if rows_c:
            ax = axes[rows_c[-1], c]
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("truth", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("posterior mean", fontsize=7)
    handles = []
    for cls, colour in _CLASS_COLOUR.items():
        if any(d["class"] == cls for d in table):
            handles.append(Line2D([], [], marker="o", ls="", color=colour, label=cls, markersize=4))
    fig.legend(handles=handles, loc="lower right", fontsize=7, frameon=False, ncol=len(handles))
    fig.suptitle(f"{model} parameter recovery ({kernel} kernel, n = {n_used} sites): truth vs posterior mean, "
                 f"normalised; whiskers 5-95 %; * identifiable (acceptance r >= {R_MIN:g})", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return True


def write_recovery(run_dir: Path, model: str, kernel: str, rows: Sequence[dict[str, Any]], truth: np.ndarray,
                   mean: np.ndarray, q05: np.ndarray, q95: np.ndarray, names: Sequence[str],
                   mask: np.ndarray | None = None) -> list[Path]:
    """Write ``recovery_<model>.csv`` and ``recovery_<model>.png`` into ``run_dir``, atomically.

    Parameters
    ----------
    run_dir : Path
        The run directory (created if missing).
    model : str
        ``"clm5"`` or ``"compas"``.
    kernel : str
        The sampler kernel (``"paper"``, ``"textbook"``): a CSV column and the figure's title.
    rows : sequence of dict
        :func:`prodampi.inference.recovery.score_recovery` rows, one per parameter, in column order.
    truth, mean, q05, q95 : ndarray, shape (S, P)
        True normalised parameters, posterior means and 5 %/95 % quantiles (normalised, dimensionless).
    names : sequence of str, length P
        Parameter names.
    mask : ndarray of bool, shape (S,), optional
        Sites to plot (the ones that were scored); default all.

    Returns
    -------
    list of Path
        The files written: the CSV, then the PNG (absent when matplotlib is not installed).

    The CSV has the columns :data:`CSV_COLUMNS`: one row per parameter, floats in full precision (``repr``),
    NaN as ``nan``, booleans ``true``/``false``.
    """
    run_dir = Path(run_dir)
    names = list(names)
    truth, mean, q05, q95 = (np.asarray(a, dtype=np.float64) for a in (truth, mean, q05, q95))
    if len(rows) != len(names) or truth.ndim != 2 or truth.shape[1] != len(names):
        raise ValueError(f"{len(rows)} rows, {len(names)} names and truth of shape {truth.shape} do not match")
    for a, what in ((mean, "mean"), (q05, "q05"), (q95, "q95")):
        if a.shape != truth.shape:
            raise ValueError(f"{what} has shape {a.shape}, expected {truth.shape}")
    if [r["name"] for r in rows] != names:
        raise ValueError("rows are not in the order of names")
    site_ok = np.ones(truth.shape[0], bool) if mask is None else np.asarray(mask, dtype=bool)
    table = _full_rows(model, kernel, rows)
    written = []
    csv_path = run_dir / csv_name(model)
    _write_csv(csv_path, table)
    written.append(csv_path)
    png_path = run_dir / png_name(model)
    if _write_png(png_path, model, kernel, table, truth, mean, q05, q95, names, site_ok):
        written.append(png_path)
    return written


def recovery_markdown(rows: Sequence[dict[str, Any]], model: str | None = None, kernel: str | None = None) -> str:
    """A Markdown table of recovery rows (for the closing note or the README).

    Parameters
    ----------
    rows : sequence of dict
        :func:`prodampi.inference.recovery.score_recovery` rows (with or without ``model=``).
    model, kernel : str, optional
        Added as a heading line; ``model`` also fills the class columns when the rows lack them.

    Returns
    -------
    str
        The table, one line per parameter, ending with a newline.  Identifiable parameters are in bold, the
        unused one is marked "(unused)"; r, R², RMSE, bias, coverage and SD ratio to 2-3 decimals.
    """
    model = model if model is not None else next((r["model"] for r in rows if "model" in r), None)
    lines = []
    if model is not None or kernel is not None:
        head = " ".join(x for x in (model, f"({kernel} kernel)" if kernel else None) if x)
        n = max((int(r["n"]) for r in rows), default=0)
        lines += [f"**Parameter recovery, {head}**, n = {n} sites", ""]
    lines.append("| # | parameter | class | n | r | R² | RMSE | bias | cov. 90 % | SD ratio | contraction |")
    lines.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ident = set(IDENTIFIABLE.get(model, ())) if model else set()
    unused = set(UNUSED.get(model, ())) if model else set()
    for r in rows:
        cls = r.get("class") or (classify(model, r["name"]) if model else "")
        name = r["name"]
        if r.get("identifiable", name in ident):
            name = f"**{name}**"
        if r["name"] in unused or cls == "unused":
            name = f"{name} (unused)"
        lines.append(f"| {int(r['index']) + 1} | {name} | {cls} | {int(r['n'])} | {_fmt(r['r'], '.3f')} | "
                     f"{_fmt(r['r2'], '.3f')} | {_fmt(r['rmse'], '.3f')} | {_fmt(r['bias'], '+.3f')} | "
                     f"{_fmt(r['coverage90'], '.2f')} | {_fmt(r['sd_ratio'], '.2f')} | "
                     f"{_fmt(r['contraction'], '.2f')} |")
    return "\n".join(lines) + "\n"
