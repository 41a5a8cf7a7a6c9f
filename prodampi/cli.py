"""Command line: ``prodampi <command> ...`` (also ``python -m prodampi`` and ``bin/prodampi``).

Commands
--------
validate DECK           check a deck, print the resolved deck (``--schema`` lists every key)
selftest                MPI + parallel HDF5 + netCDF4 + torch in one process (run under mpiexec -n N)
run DECK                every available stage in order
<stage> DECK            one stage (prepare, ...); each takes --run-dir DIR
status DECK             what the run directory holds (<run_dir>/<stage>.json and the stage registry's files)
bench models            steady-state speed of the soil models (--quick, --json)

Exit status: 0 success, 1 unexpected failure (any rank), 2 bad deck or input, 3 stage cannot run (a run file
it needs is missing or unusable -- the one-line message names the file and the command that makes it -- or the
stage is not available in this version).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .stages.registry import STAGES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prodampi", description="PRODA as an MPI-parallel batch application.")
    p.add_argument("--version", action="version", version=f"prodampi {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    v = sub.add_parser("validate", help="check a deck and print it with defaults filled in")
    v.add_argument("deck", nargs="?")
    v.add_argument("--run-dir", help="override the deck's run_dir")
    v.add_argument("--schema", action="store_true", help="list every deck key, its type and default")

    s = sub.add_parser("selftest", help="check MPI, parallel HDF5, netCDF4 and torch together")
    s.add_argument("--run-dir", help="folder for the temporary test files (default: system temp)")

    for name in ("run", *STAGES):
        h = "run every available stage in order" if name == "run" else f"stage {name}: {STAGES[name].doc}"
        sp = sub.add_parser(name, help=h)
        sp.add_argument("deck")
        sp.add_argument("--run-dir", help="override the deck's run_dir")

    st = sub.add_parser("status", help="show what a run directory holds")
    st.add_argument("deck")
    st.add_argument("--run-dir", help="override the deck's run_dir")
    st.add_argument("--json", action="store_true")

    b = sub.add_parser("bench", help="benchmarks")
    b.add_argument("what", choices=["models"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options passed on (--quick, --json, --models)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``prodampi`` console script."""
    args = _parser().parse_args(argv)

    if args.command == "bench":  # serial tool on one core; no MPI world needed
        import os

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy loads its BLAS
            os.environ.setdefault(var, "1")
        from .soil.bench import main as bench_main

        return int(bench_main(args.rest) or 0)
    if args.command == "validate" and args.schema:
        from .deck import schema_text

        print("\n".join(schema_text()))
        return 0

    from .parallel.comm import World, abort_on_error, setup_logging

    world = World()
    with abort_on_error(world):
        setup_logging(world)
        if args.command == "selftest":
            from .selftest import run_selftest

            return 0 if run_selftest(world, args.run_dir) else 1

        from .deck import load_deck
        from .errors import DeckError

        if args.deck is None:
            raise DeckError("validate: a DECK argument is required")
        deck = world.run_collective(load_deck, args.deck, run_dir=args.run_dir)

        if args.command == "validate":
            if world.is_root:
                import yaml

                shown = {k: v for k, v in deck.items() if not k.startswith("_")}
                print(f"# {args.deck}: valid\n" + yaml.safe_dump(shown, sort_keys=False), end="")
            return 0
        if args.command == "status":
            if world.is_root:
                print_status(deck, as_json=args.json)
            return 0
        from .stages.common import run_stage
        from .stages.registry import available_stages, check_prerequisites

        stages = available_stages() if args.command == "run" else [args.command]
        world.run_collective(check_prerequisites, stages, deck, args.deck, args.run_dir)
        for stage in stages:
            run_stage(stage, deck, world)
        missing = [s for s in STAGES if s not in available_stages()]
        if args.command == "run" and world.is_root and missing:
            print(f"prodampi: stages not available in this version: {', '.join(missing)}", file=sys.stderr)
        return 0
    return 1  # pragma: no cover - abort_on_error exits


def print_status(deck: dict, as_json: bool = False) -> None:
    """Print the state of each registered stage: its ``<run_dir>/<stage>.json`` and the files it makes."""
    from .stages.registry import file_states

    run_dir = Path(deck["run_dir"])
    files = file_states(deck)
    rows = {}
    for stage, spec in STAGES.items():
        p = run_dir / f"{stage}.json"
        bad = {f: why for f, why in files[stage].items() if why != "ok"}
        if p.is_file():
            rec = json.loads(p.read_text())
            status = rec.get("status")
            if status == "done" and bad:
                f, why = next(iter(bad.items()))
                status = f"done, but {f} is {why}"
            rows[stage] = {"status": status, "finished": rec.get("provenance", {}).get("created_at"),
                           "seconds": rec.get("timings_s", {}).get("total"), "summary": rec.get("summary")}
        else:
            rows[stage] = {"status": "not run" if spec.available else "not available"}
        rows[stage]["files"] = files[stage]
    if as_json:
        print(json.dumps({"run_dir": str(run_dir), "stages": rows}, indent=2))
        return
    print(f"run directory: {run_dir}")
    for stage, r in rows.items():
        extra = f"  finished {r['finished']} in {r['seconds']} s" if r.get("finished") else ""
        print(f"  {stage:<11} {r['status']}{extra}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
