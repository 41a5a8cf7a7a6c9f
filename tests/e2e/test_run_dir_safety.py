"""Run-directory safety end to end (issue 9): symlinks planted under every name a run writes, two jobs on one
run directory, SIGKILL/SIGTERM at random moments of ``prepare`` under ``mpiexec -n 2``."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

DECK = "run_dir: out\nseed: 7\nprepare:\n  world:\n    resolution_deg: {res}\n    n_profiles: {n}\n"


def _deck(tmp_path: Path, res: float = 10, n: int = 40) -> Path:
    p = tmp_path / "deck.yaml"
    p.write_text(DECK.format(res=res, n=n))
    return p


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if skip in p.parents or p == skip or p.is_dir():
            continue
        out[str(p)] = "link:" + os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _datasets(path: Path) -> dict[str, bytes]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, np.asarray(o[()]).tobytes())
                     if isinstance(o, h5py.Dataset) else None)
    return out


def _temps(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.name.startswith(".prodampi-tmp-") or ".tmp" in p.name]


def test_planted_symlinks_never_followed(tmp_path, job_runner):
    deck = _deck(tmp_path)
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / ".prodampi-run").write_text("")
    victims = tmp_path / "victims"
    victims.mkdir()
    names = []
    for pid in range(1, 40000, 97):  # the old predictable temp names for many pids
        names += [f".inputs.h5.tmp{pid}", f".prepare.json.tmp{pid}"]
    names += ["inputs.h5", "prepare.json", "logs/prepare_p0.log", "logs/prepare_p1.log", ".prodampi-run.tmp"]
    for i, n in enumerate(names):
        v = victims / f"v{i}"
        v.write_text(f"victim {i}")
        (run / n).unlink(missing_ok=True)
        (run / n).symlink_to(v)
    (victims / "dangling-target").unlink(missing_ok=True)
    before = _snapshot(tmp_path, run)
    r = job_runner.prodampi(["prepare", str(deck), "--run-dir", str(run)], n=2 if job_runner.mpiexec else 1,
                            timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _snapshot(tmp_path, run) == before, "a file outside the run directory changed"
    for n in ("inputs.h5", "prepare.json", "logs/prepare_p0.log"):
        assert not (run / n).is_symlink() and (run / n).is_file(), n
    assert not [p for p in run.rglob(".prodampi-tmp-*")]


def test_second_job_stops_at_once_naming_first(tmp_path, job_runner):
    deck = _deck(tmp_path, res=5, n=80)
    run = tmp_path / "run"
    args = ["-m", "prodampi", "prepare", str(deck), "--run-dir", str(run)]
    first = subprocess.Popen(job_runner.command(None, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=job_runner.env(), cwd=job_runner.cwd)
    try:
        lockf = run / ".prodampi.lock"
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and not (lockf.exists() and lockf.read_text().strip()):
            time.sleep(0.05)
        t0 = time.monotonic()
        r = job_runner.prodampi(["prepare", str(deck), "--run-dir", str(run)], timeout=60)
        dt = time.monotonic() - t0
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, out + err
    assert r.returncode == 3, r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("prodampi:")]
    assert len(lines) == 1 and "in use by another prodampi job" in lines[0] and f"pid {first.pid}" in lines[0]
    assert "host " in lines[0] and "Traceback" not in r.stderr
    assert dt < 5.0, dt
    assert (run / "inputs.h5").is_file()


@pytest.mark.skipif(os.environ.get("PRODAMPI_SKIP_KILLS") == "1", reason="PRODAMPI_SKIP_KILLS")
def test_kills_at_random_moments_recover(tmp_path, mpi_runner):
    deck = _deck(tmp_path, res=10, n=40)
    ref = tmp_path / "ref"
    r = mpi_runner.prodampi(["prepare", str(deck), "--run-dir", str(ref)], n=2, timeout=120)
    assert r.returncode == 0, r.stderr
    want = _datasets(ref / "inputs.h5")
    rng = random.Random(20261201)
    run = tmp_path / "run"
    args = ["-m", "prodampi", "prepare", str(deck), "--run-dir", str(run)]
    seen_term = 0
    for i in range(10):
        sig = signal.SIGKILL if i % 2 else signal.SIGTERM
        if (run / "inputs.h5").exists() and i % 3 == 0:
            (run / "inputs.h5").unlink()  # make the next job rebuild, so kills land inside the write too
        p = subprocess.Popen(mpi_runner.command(2, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=mpi_runner.env(), cwd=mpi_runner.cwd, start_new_session=True)
        time.sleep(rng.uniform(0.2, 3.0))
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        out, err = p.communicate(timeout=60)
        assert "Traceback" not in err, err
        if sig == signal.SIGTERM and "interrupted by SIGTERM" in err:
            seen_term += 1
        assert _status_says_done(mpi_runner, deck, run) == _truly_done(deck, run), f"kill {i}: status is wrong"
        r = mpi_runner.prodampi(["prepare", str(deck), "--run-dir", str(run)], n=2, timeout=120)
        assert r.returncode == 0, f"kill {i} ({sig.name}): " + r.stderr
        assert _datasets(run / "inputs.h5") == want, f"kill {i}: datasets differ"
        assert not _temps(run), f"kill {i}: temp files survived: {_temps(run)}"
        assert _status_says_done(mpi_runner, deck, run) and _truly_done(deck, run), f"kill {i}: not done"
    assert seen_term >= 1, "no SIGTERM landed inside a stage"


def _status_says_done(runner, deck: Path, run: Path) -> bool:
    """What ``prodampi status --json`` says of prepare."""
    r = runner.prodampi(["status", str(deck), "--run-dir", str(run), "--json"], n=1, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return json.loads(r.stdout)["stages"]["prepare"]["status"] == "done"


def _truly_done(deck: Path, run: Path) -> bool:
    """Independently of status: prepare.json is there and describes the inputs.h5 on disk, which verifies."""
    from prodampi.deck import load_deck
    from prodampi.io.inputs import check_inputs
    from prodampi.stages.registry import made_file_digests

    js = run / "prepare.json"
    if not js.is_file() or check_inputs(run / "inputs.h5") is not None:
        return False
    rec = json.loads(js.read_text())
    return rec.get("files") == made_file_digests("prepare", load_deck(deck, run_dir=str(run)))


def test_sigterm_serial_documented_exit_status(tmp_path, job_runner):
    deck = _deck(tmp_path, res=5, n=80)
    run = tmp_path / "run"
    args = ["-m", "prodampi", "prepare", str(deck), "--run-dir", str(run)]
    p = subprocess.Popen(job_runner.command(None, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=job_runner.env(), cwd=job_runner.cwd)
    lockf = run / ".prodampi.lock"
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end and not (lockf.exists() and lockf.read_text().strip()):
        time.sleep(0.02)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip("prepare finished before SIGTERM arrived")
    assert p.returncode == 143, err
    lines = [x for x in err.splitlines() if x.startswith("prodampi:")]
    assert lines == [lines[0]] and lines[0].startswith("prodampi: interrupted by SIGTERM"), err
    assert "Traceback" not in err and not _temps(run)
