"""Command line: ``prodampi <command> ...`` (also ``python -m prodampi`` and ``bin/prodampi``).

Commands
--------
validate DECK           check a deck, print the resolved deck (``--schema`` lists every key)
selftest                MPI + parallel HDF5 + netCDF4 + torch in one process (run under mpiexec -n N)
run DECK                every available stage in order
<stage> DECK            one stage (prepare, ...); each takes --run-dir DIR
status DECK             what the run directory holds (<run_dir>/<stage>.json and the stage registry's files),
                        each file checked against its contract, its deck key and its per-dataset checksums
verify RUN_DIR|DECK     check every run file against its contract and checksums (and, given a DECK, its
                        deck key); one line per file; exit 0 when all are fine, 2 when one is not
bench models            steady-state speed of the soil models (--quick, --json)
bench assimilate        cost of a sampler iteration (model / sampler / I/O) and profiles per core-hour
bench learn             training throughput (member-epochs/s) and the paper-scale job's core-hours

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

    vf = sub.add_parser("verify", help="check every run file of a run directory (contract, checksums, key)")
    vf.add_argument("target", metavar="RUN_DIR|DECK")
    vf.add_argument("--run-dir", help="override the deck's run_dir (with a DECK)")

    b = sub.add_parser("bench", help="benchmarks")
    b.add_argument("what", choices=["models", "assimilate", "learn"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options passed on (--quick, --json, --models)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``prodampi`` console script."""
    args = _parser().parse_args(argv)

    if args.command == "bench":  # serial tool on one core; no MPI world needed
        import os

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy loads its BLAS
            os.environ.setdefault(var, "1")
        rest = list(args.rest)
        if args.what == "assimilate":
            from .inference.bench import main as bench_assimilate

            return int(bench_assimilate(rest) or 0)
        if args.what == "learn":
            from .stages.learn_bench import main as bench_learn

            return int(bench_learn(rest) or 0)
        from .soil.bench import main as bench_main

        return int(bench_main(rest) or 0)
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

        if args.command == "verify":
            code = 0
            if world.is_root:
                target = Path(args.target)
                if target.is_dir():
                    deck = {"run_dir": str(target), "models": []}
                else:
                    deck = load_deck(args.target, run_dir=args.run_dir)
                code = verify_run_dir(deck, with_key=not target.is_dir())
            return int(world.bcast(code))

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


def verify_run_dir(deck: dict, with_key: bool = True) -> int:
    """``prodampi verify``: one line per run file present (``ok`` or what failed); 0 when every file present
    is fine and at least one is present, 2 otherwise."""
    from .stages.registry import RUN_FILES

    run_dir = Path(deck["run_dir"])
    if not run_dir.is_dir():
        print(f"{run_dir}: not a run directory")
        return 2
    n_present = n_bad = 0
    for rf in RUN_FILES.values():
        if rf.contract is None:
            continue
        for p in rf.paths(run_dir, deck):
            if not p.exists() and not p.is_symlink():
                continue
            n_present += 1
            why = rf.problem(p, deck if with_key else None)
            if why is None and p.is_symlink():
                why = "a symlink, not a run file"
            n_bad += why is not None
            print(f"{p}: {'ok' if why is None else why}")
    if n_present == 0:
        print(f"{run_dir}: no run files to verify")
        return 2
    return 2 if n_bad else 0


def _read_summary(p: Path) -> tuple[dict | None, str | None]:
    """A ``<stage>.json`` as a dict, or None and why it cannot be read."""
    try:
        rec = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if not isinstance(rec, dict):
        return None, "unreadable (not a JSON object)"
    return rec, None


def print_status(deck: dict, as_json: bool = False) -> None:
    """Print the state of each registered stage: its ``<run_dir>/<stage>.json`` and the files it makes.

    Every file is checked, not taken on trust: present, of its contract, made by this deck (its key) and every
    dataset matching its stored checksum; and when the summary records ``"files"`` (file name -> digest,
    :func:`~prodampi.stages.registry.made_file_digests`), each file must still have that digest.  A status of
    ``done`` is printed only when all of that holds; otherwise the line says what does not."""
    from .stages.registry import file_states, made_file_digests

    run_dir = Path(deck["run_dir"])
    files = file_states(deck)
    rows = {}
    for stage, spec in STAGES.items():
        p = run_dir / f"{stage}.json"
        bad = {f: why for f, why in files[stage].items() if why != "ok"}
        if p.is_file():
            rec, unreadable = _read_summary(p)
            if rec is None:
                rows[stage] = {"status": f"{p.name} is {unreadable}"}
                rows[stage]["files"] = files[stage]
                continue
            status = rec.get("status")
            if status == "done" and bad:
                f, why = next(iter(bad.items()))
                status = f"{p.name} says done, but {Path(f).name} {_is(why)}"
            elif status == "done" and isinstance(rec.get("files"), dict):
                now = made_file_digests(stage, deck)
                for name, digest in rec["files"].items():
                    if now.get(name) != digest:
                        status = (f"{p.name} says done, but {name} was replaced after {p.name} was written "
                                  "(its checksums differ from those recorded)")
                        break
            prov = rec.get("provenance") if isinstance(rec.get("provenance"), dict) else {}
            tim = rec.get("timings_s") if isinstance(rec.get("timings_s"), dict) else {}
            rows[stage] = {"status": status, "finished": prov.get("created_at"),
                           "seconds": tim.get("total"), "summary": rec.get("summary")}
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


def _is(why: str) -> str:
    """``why`` (a contract's reason) as the end of a sentence about the file."""
    if why.startswith("dataset "):
        path, _, rest = why[len("dataset "):].partition(" ")
        return f"{rest} in {path}" if rest.startswith("fails") else f"has {why}"
    return f"is {why}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
