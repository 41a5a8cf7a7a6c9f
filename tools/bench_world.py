#!/usr/bin/env python
"""Time the synthetic world and check its global integrals against ``world.md`` §9.

Each resolution is generated in a fresh child process, so its wall time and peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) are its own (the land-mask package alone holds ~1 GB).

Usage::

    python tools/bench_world.py                      # 2 and 0.5 degree, table
    python tools/bench_world.py --resolutions 2 --json
    python tools/bench_world.py --no-customary       # skip the customary-parameter forward runs

Columns: value, target, band (lo-hi) and whether the value lies inside the band.  The §9 rows carry the
published/chosen bands; rows marked "chosen" are the other design targets of ``world.md`` (latitude medians of
the true SOC, permafrost location, cross-model correlation) and are informative.  The bands are for the full
0.5-degree world; coarser grids keep more coastal area, so their totals are larger.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: extra design targets (world.md §4.5, §6, §9 "CHOSEN" rows without a band in the §9 table)
CHOSEN: dict[str, tuple[float, float, float, str]] = {
    "permafrost_north55_frac": (0.9, 0.8, 1.0, "1"),
    "permafrost_plateau_frac": (0.075, 0.05, 0.10, "1"),
    "truth_median_north60_kg_m2": (30.0, 20.0, 45.0, "kg C m-2"),
    "truth_median_subtropics_kg_m2": (5.5, 3.0, 8.0, "kg C m-2"),
    "truth_median_tropics_kg_m2": (11.5, 8.0, 15.0, "kg C m-2"),
    "cross_model_r_true": (0.51, 0.3, 0.7, "1"),
    "cross_model_r_customary": (-0.026, -0.2, 0.2, "1"),
}


def _child(res: float, seed: int, customary: bool) -> dict:
    """Generate one world in this process and return timings, memory and integrals."""
    from prodampi.data.world import make_world, world_integrals

    t0 = time.perf_counter()
    world = make_world(res, seed=seed)
    t_make = time.perf_counter() - t0
    rss_make = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB -> MiB (Linux)
    t1 = time.perf_counter()
    integrals = world_integrals(world, customary=customary)
    t_int = time.perf_counter() - t1
    return {
        "resolution_deg": res, "seed": seed, "make_world_s": t_make, "integrals_s": t_int,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "peak_rss_make_world_mib": rss_make, "n_land": int(world.cell_id.size), "n_valid": world.n_valid,
        "n_profiles": int(world.attrs["n_profiles"]), "integrals": integrals,
        "attrs": {k: v for k, v in world.attrs.items() if isinstance(v, (int, float, str))},
    }


def _run_child(res: float, seed: int, customary: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(res), "--seed", str(seed)]
    if not customary:
        cmd.append("--no-customary")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"world at {res} deg failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rows(result: dict) -> list[dict]:
    from prodampi.data.world import TARGETS

    rows = []
    for kind, table in (("§9", TARGETS), ("chosen", CHOSEN)):
        for name, (target, lo, hi, unit) in table.items():
            v = result["integrals"].get(name)
            applies = not (name == "valid_cells" and result["resolution_deg"] != 0.5)  # a 0.5-degree count
            rows.append({"quantity": name, "kind": kind, "value": v, "target": target, "lo": lo, "hi": hi,
                         "unit": unit, "in_band": None if v is None or not applies else bool(lo <= v <= hi)})
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", type=float, nargs="+", default=[2.0, 0.5], help="grid spacings (deg)")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    ap.add_argument("--no-customary", action="store_true", help="skip the customary-parameter runs")
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child, args.seed, not args.no_customary), default=float))
        return 0
    results = []
    for res in args.resolutions:
        r = _run_child(res, args.seed, not args.no_customary)
        r["rows"] = _rows(r)
        results.append(r)
    if args.json:
        print(json.dumps({"seed": args.seed, "results": results}, indent=1, default=float))
        return 0
    for r in results:
        print(f"\n== synthetic world {r['resolution_deg']:g} deg, seed {r['seed']}: make_world "
              f"{r['make_world_s']:.1f} s, peak RSS {r['peak_rss_make_world_mib']:.0f} MiB "
              f"(with integrals {r['integrals_s']:.1f} s, {r['peak_rss_mib']:.0f} MiB); "
              f"{r['n_land']} land / {r['n_valid']} valid cells, {r['n_profiles']} profiles")
        print(f"{'quantity':32s} {'kind':7s} {'value':>10s} {'target':>10s} {'band':>19s}  unit        ok")
        for row in r["rows"]:
            band = f"{_fmt(row['lo'])}-{_fmt(row['hi'])}"
            ok = "-" if row["in_band"] is None else ("yes" if row["in_band"] else "NO")
            print(f"{row['quantity']:32s} {row['kind']:7s} {_fmt(row['value']):>10s} {_fmt(row['target']):>10s} "
                  f"{band:>19s}  {row['unit']:11s} {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
