"""Bad inputs through the real CLI (issue 9, acceptance 5).

Every case: a non-zero exit, no traceback, one stderr line naming the file and the field or row, and nothing
half-written in the run directory (no ``inputs.h5``, no temp files).  The table of cases and their messages is
written to ``/tmp/bad_inputs_table.md`` (name -> exit -> message) for the closing note.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: set PRODAMPI_BAD_INPUTS_TABLE=FILE to get the table of cases and messages as markdown (for notes)
TABLE = os.environ.get("PRODAMPI_BAD_INPUTS_TABLE")
ROWS: dict[str, tuple[int, str, float]] = {}

SITES = "SOURCEID,LONWGS84,LATWGS84,TIMESTRR,TAXGWRB,TAXNUSDA,BDRICM,SOURCEDB\n"
HOR = "SOURCEID,UHDICM,LHDICM,CRFVOL,PHIHOX,PHIKCL,ORCDRC,SNDPPT,SLTPPT,CLYPPT,CEC,BLD\n"


def _sites(n: int = 3) -> str:
    return SITES + "".join(f"P{i},{10 + i}.5,{45 + i}.25,2000-01-01,X,Y,,ISIS\n" for i in range(n))


def _hor(n: int = 3, depths=((0, 10), (10, 30), (30, 60), (60, 100)), soc: str = "12") -> str:
    return HOR + "".join(f"P{i},{t},{b},,,,{soc},30,30,40,,1.3\n" for i in range(n) for t, b in depths)


def _table_deck(tmp: Path, sites: str, hor: str) -> str:
    (tmp / "s.csv").write_text(sites)
    (tmp / "h.csv").write_text(hor)
    return ("run_dir: run\nprepare:\n  source: table\n  world: {resolution_deg: 10.0}\n"
            "  profiles: {format: isis, sites: s.csv, horizons: h.csv}\n")


def _write(tmp: Path, text: str | bytes) -> Path:
    p = tmp / "deck.yaml"
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


OK = "run_dir: run\n"
SYN = "run_dir: run\nprepare:\n  world: {resolution_deg: 10.0, n_profiles: %d}\n"


def _alias_bomb() -> str:
    s = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    prev = "a"
    for i in range(9):
        name = chr(98 + i)
        s += f"{name}: &{name} [" + ",".join(["*" + prev] * 9) + "]\n"
        prev = name
    return "run_dir: run\nx: &x\n" + "".join("  " + line + "\n" for line in s.splitlines()) + f"description: *{prev}\n"


# name -> (command, deck text or builder, expected substrings in the one line, extra env)
def _cases() -> dict[str, tuple]:
    return {
        "resolution_deg 7.3": ("validate", OK + "prepare:\n  world: {resolution_deg: 7.3}\n",
                               ["prepare.world.resolution_deg", "7.2, 7.5"], {}),
        "resolution_deg 7.3 (prepare)": ("prepare", OK + "prepare:\n  world: {resolution_deg: 7.3}\n",
                                         ["prepare.world.resolution_deg"], {}),
        "unclosed bracket": ("validate", OK + "models: [clm5\n", ["invalid YAML"], {}),
        "tab indentation": ("validate", OK + "prepare:\n\tsource: table\n", ["invalid YAML"], {}),
        "bad indentation": ("validate", OK + "prepare:\n    source: table\n  world: {}\n", ["invalid YAML"], {}),
        "list at top level": ("validate", "- run_dir: run\n- seed: 1\n", ["must be a mapping"], {}),
        "scalar at top level": ("validate", "just a string\n", ["must be a mapping"], {}),
        "empty deck": ("validate", "", ["run_dir: missing"], {}),
        "binary garbage": ("validate", b"run_dir: run\n\x00\x01\x02\xff\xfe", ["binary data"], {}),
        "not UTF-8": ("validate", b"run_dir: run\ndescription: caf\xe9\n", ["not UTF-8"], {}),
        "non-string key": ("validate", OK + "? [a, b]\n: 1\n", ["key must be a plain name"], {}),
        "mapping as key inside value": ("validate", OK + "prepare:\n  ? {a: 1}\n  : 2\n",
                                        ["key must be a plain name"], {}),
        "duplicate key": ("validate", OK + "seed: 1\nseed: 2\n", ["duplicate key 'seed'"], {}),
        "alias bomb under a string key": ("validate", _alias_bomb(), ["alias bomb"], {}),
        "50 MB deck": ("validate", None, ["larger than 1024 KiB"], {}),
        "nesting 1000 deep": ("validate", OK + "description: " + "[" * 1000 + "]" * 1000 + "\n",
                              ["nested deeper than"], {}),
        "unknown key": ("validate", OK + "modles: [clm5]\n", ["modles: unknown key", "models"], {}),
        "wrong type": ("validate", OK + "seed: abc\n", ["seed = 'abc'", "integer"], {}),
        "NaN value": ("validate", OK + "learn: {learning_rate: .nan}\n", ["learn.learning_rate", "finite"], {}),
        "bad choice": ("validate", OK + "prepare: {profiles: {format: isys}}\n",
                       ["prepare.profiles.format", "isis"], {}),
        "missing run_dir": ("validate", "seed: 1\n", ["run_dir: missing"], {}),
        "horizon file not found": ("validate", OK + "prepare:\n  source: table\n  profiles: {sites: nope.csv}\n",
                                   ["prepare.profiles.sites", "file not found"], {}),
        "run_dir is a file": ("validate", "run_dir: afile\n", ["run_dir", "not a directory"], {}),
        "run_dir under a file": ("validate", "run_dir: afile/sub/run\n", ["run_dir", "is not a directory"], {}),
        "run_dir is a file (prepare)": ("prepare", "run_dir: afile\n", ["run_dir", "not a directory"], {}),
        "malformed PRODAMPI_FAULT": ("prepare", SYN % 50, ["PRODAMPI_FAULT", "bad item"],
                                     {"PRODAMPI_FAULT": "explode:prepare_before_write"}),
        "PRODAMPI_FAULT bad rank": ("prepare", SYN % 50, ["PRODAMPI_FAULT"], {"PRODAMPI_FAULT": "raise:x@one"}),
        "header-only horizon table": ("prepare", ("table", _sites(), HOR), ["h.csv", "no profile kept"], {}),
        "all SOC empty": ("prepare", ("table", _sites(), _hor(soc="")), ["h.csv", "no profile kept"], {}),
        "depths in metres": ("prepare", ("table", _sites(), _hor(depths=((0, 0.1), (0.1, 0.3), (0.3, 0.6)))),
                             ["h.csv", "bottom_cm", "look like metres"], {}),
        "depths in mm": ("prepare", ("table", _sites(), _hor(depths=((0, 300), (300, 1000), (1000, 2000)))),
                         ["h.csv", "bottom_cm", "look like mm"], {}),
        "empty site table": ("prepare", ("table", "", _hor()), ["s.csv"], {}),
        "horizon table lacks a column": ("prepare", ("table", _sites(), HOR.replace(",ORCDRC", "") +
                                                     "P0,0,10,,,,30,30,40,,1.3\n"), ["h.csv", "ORCDRC"], {}),
        "synthetic world with one profile": ("prepare", SYN % 1, ["prepare.world", "no profile kept"], {}),
    }


CASES = _cases()


def _run(cmd: str, deck: Path, cwd: Path, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    e = {**os.environ, "PYTHONPATH": str(REPO), **env}
    e.pop("PRODAMPI_FAULT", None) if "PRODAMPI_FAULT" not in env else None
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "prodampi", cmd, str(deck.name)], cwd=cwd, env=e,
                       capture_output=True, text=True, timeout=120)
    return r, time.monotonic() - t0


def _check(name: str, r: subprocess.CompletedProcess, wall: float, expect: list[str], deck_name: str,
           run_dir: Path) -> None:
    err = r.stderr
    lines = [ln for ln in err.splitlines() if "error" in ln.lower() or "prodampi:" in ln]
    line = next((ln for ln in lines if all(x in ln for x in expect)), None)
    ROWS[name] = (r.returncode, (line or (err.strip().splitlines() or [""])[-1]).strip(), wall)
    assert r.returncode != 0, f"{name}: exit 0\n{err}"
    assert "Traceback" not in err, f"{name}: traceback\n{err}"
    assert line is not None, f"{name}: no line with {expect}\n{err}"
    names_file = deck_name in line or "PRODAMPI_FAULT" in line or any(
        f in line for f in ("h.csv", "s.csv", "afile", str(run_dir)))
    assert names_file, f"{name}: the line names no file: {line}"
    if run_dir.is_dir():
        left = [p.name for p in run_dir.iterdir() if p.name == "inputs.h5" or ".tmp" in p.name]
        assert not left, f"{name}: half-written files left: {left}"
    if "no profile kept" in line:  # the funnel is recorded in prepare.json too, and status says failed
        rec = json.loads((run_dir / "prepare.json").read_text())
        assert rec["status"] == "failed" and rec["summary"]["profiles_kept"] == 0, rec
        assert rec["summary"]["profiles_read"] == rec["summary"]["profiles_rejected"] > 0, rec


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, tmp_path: Path) -> None:
    cmd, text, expect, env = CASES[name]
    (tmp_path / "afile").write_text("not a directory\n")
    if isinstance(text, tuple):
        text = _table_deck(tmp_path, text[1], text[2])
    if text is None:  # 50 MB deck
        p = tmp_path / "deck.yaml"
        with open(p, "w") as fh:
            fh.write(OK + "description: |\n")
            chunk = "  " + "x" * 1022 + "\n"
            for _ in range(50 * 1024):
                fh.write(chunk)
    else:
        p = _write(tmp_path, text)
    r, wall = _run(cmd, p, tmp_path, env)
    _check(name, r, wall, expect, "deck.yaml", tmp_path / "run")
    if name == "50 MB deck":
        assert wall < 10.0, f"50 MB deck took {wall:.1f} s"
    if name == "alias bomb under a string key":
        assert wall < 10.0


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_run_dir_read_only(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        mounted = False
    else:
        if not (_can_mount() and _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", str(ro)])):
            pytest.skip("cannot mount a tmpfs here to make a read-only folder as root")
        mounted = True
        if not _mount(["-o", "remount,ro", str(ro)]):
            subprocess.run(["umount", str(ro)])
            pytest.skip("cannot remount the tmpfs read-only")
    try:
        for sub, cmd in (("ro", "validate"), ("ro/new/run", "validate"), ("ro", "prepare")):
            name = f"run_dir read-only ({sub}, {cmd})"
            p = _write(tmp_path, f"run_dir: {sub}\n")
            r, wall = _run(cmd, p, tmp_path, {})
            _check(name, r, wall, ["run_dir", "writable"], "deck.yaml", ro)
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)])


def test_full_disk(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    if not (_can_mount() and _mount(["-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)])):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        p = _write(tmp_path, f"run_dir: {full}/run\nlogging: {{per_rank_files: false}}\n"
                             "prepare:\n  world: {resolution_deg: 10.0, n_profiles: 200}\n")
        r, wall = _run("prepare", p, tmp_path, {})
        _check("full disk (64 KiB tmpfs)", r, wall, ["full/run", "space"], "deck.yaml", full / "run")
    finally:
        subprocess.run(["umount", str(full)])


def teardown_module() -> None:
    if not ROWS or not TABLE:
        return
    out = ["| # | bad input | exit | message (stderr) | s |", "|---|---|---|---|---|"]
    for i, (name, (rc, msg, wall)) in enumerate(ROWS.items(), 1):
        out.append(f"| {i} | {name} | {rc} | `{msg.replace('|', '/')[:220]}` | {wall:.1f} |")
    Path(TABLE).write_text("\n".join(out) + "\n")
