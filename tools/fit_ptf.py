#!/usr/bin/env python3
"""Check and refit the bulk-density pedo-transfer function on the WoSIS BD/OC layer table.

Prints the R² of the paper's coefficients with SOC in g/kg (expected about 0.26) and with SOC in %
(expected below 0), then refits the three coefficients (SOC in g/kg) and prints them with their R².  The
fitting lives in :mod:`prodampi.data.profiles`; this tool only reads and prints.

Usage::

    python tools/fit_ptf.py [PATH]

PATH defaults to ``../shared/data/wosis_bd_oc_layers/gsif_wosis_tbl_bd_oc_layers.csv.gz`` beside the
repository (the file or its folder).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from prodampi.data.profiles import PAPER_PTF, fit_ptf, ptf_r2  # noqa: E402
from prodampi.io.readers import read_bd_oc_layers  # noqa: E402

DEFAULT = REPO.parent / "shared" / "data" / "wosis_bd_oc_layers"


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT), help="BD/OC layer table (.csv.gz) or its folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    layers = read_bd_oc_layers(args.path)
    for r in layers.rejections[:20]:
        print(f"rejected: {r}")
    if len(layers.rejections) > 20:
        print(f"... {len(layers.rejections) - 20} more rejections")
    a, b, c = PAPER_PTF
    print(f"layers with BD and SOC: {layers.n_layers}")
    print(f"paper PTF  BD = {a} + {b}*exp(-{c}*1.724*SOC)")
    soc, bd = layers.soc_g_per_kg, layers.bd_g_cm3
    print(f"  R2, SOC in g/kg : {ptf_r2(soc, bd, PAPER_PTF):.4f}")
    print(f"  R2, SOC in %    : {ptf_r2(soc, bd, PAPER_PTF, soc_unit='percent'):.4f}")
    fit = fit_ptf(soc, bd)
    print(f"refit (SOC in g/kg, n = {fit.n}): a = {fit.a:.4f}, b = {fit.b:.4f}, c = {fit.c:.5f}, "
          f"R2 = {fit.r2:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
