"""Real ``mpiexec`` jobs spawned from pytest (pySDC style): abort on error, SIGKILL and the ledger, selftest."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_job_runner_environment_and_command(monkeypatch, tmp_path):
    """The shared runner: repository first on PYTHONPATH, no inherited fault spec, serial without mpiexec."""
    from prodampi.testing.mpi import MpiJobRunner, NoMpiexecError

    monkeypatch.setenv("PRODAMPI_FAULT", "raise:selftest@0")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    runner = MpiJobRunner(cwd=tmp_path, mpiexec=None)
    e = runner.env(EXTRA="1")
    assert "PRODAMPI_FAULT" not in e and e["EXTRA"] == "1" and e["OMP_NUM_THREADS"] == "1"
    assert e["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]
    assert runner.command(None, ["-c", "pass"]) == [sys.executable, "-c", "pass"]
    with pytest.raises(NoMpiexecError):
        runner.command(2, ["-c", "pass"])
    r = runner.python_serial(["-c", "import os, sys; print(os.getcwd()); sys.exit(3)"], timeout=60)
    assert r.returncode == 3 and Path(r.stdout.strip()) == tmp_path
    assert MpiJobRunner(cwd=tmp_path, mpiexec="mpiexec.x").command(3, ["a"])[:3] == ["mpiexec.x", "-n", "3"]


def test_selftest_two_ranks(tmp_path, mpi_runner):
    r = mpi_runner.run(2, ["-m", "prodampi", "selftest", "--run-dir", str(tmp_path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checks passed on 2 rank(s)" in r.stdout
    assert r.stdout.count("PASS") == 4


def test_failing_check_on_rank1_of_3_ends_job_fast(tmp_path, mpi_runner):
    """Rank 1 fails before the collective HDF5 open that ranks 0 and 2 are already waiting in."""
    t0 = time.monotonic()
    r = mpi_runner.run(3, ["-m", "prodampi", "selftest", "--run-dir", str(tmp_path)], timeout=60,
                       PRODAMPI_FAULT="raise:selftest_parallel-hdf5@1")
    elapsed = time.monotonic() - t0
    assert r.returncode != 0
    assert "prodampi: rank 1/3: InjectedFault: injected fault at 'selftest_parallel-hdf5' on rank 1" in r.stderr
    assert "all checks passed" not in r.stdout
    assert elapsed < 10.0, elapsed


def test_uncaught_exception_on_rank1_of_3_aborts_within_10s(tmp_path, mpi_runner):
    """The fault is raised outside any check: rank 1 dies with it while ranks 0 and 2 wait in a barrier."""
    t0 = time.monotonic()
    r = mpi_runner.run(3, ["-m", "prodampi", "selftest", "--run-dir", str(tmp_path)], timeout=60,
                       PRODAMPI_FAULT="raise:selftest@1")
    elapsed = time.monotonic() - t0
    assert r.returncode != 0
    assert "prodampi: rank 1/3: InjectedFault: injected fault at 'selftest' on rank 1" in r.stderr
    assert elapsed < 10.0, elapsed


def _check_ledger(runner, path: Path) -> np.ndarray:
    """Open the killed job's file in a fresh process; return the ledger's done list after checking rows."""
    code = (
        "import sys, numpy as np\n"
        "from prodampi.parallel.comm import World\n"
        "from prodampi.parallel.h5store import H5Store\n"
        "s = H5Store.open(sys.argv[1], World(), 'r')\n"
        "v = s.read_rows('v', slice(None)); d = s.done\n"
        "exp = np.stack([d * 1.25, -d.astype(float)], axis=1)\n"
        "assert np.array_equal(v[d], exp), 'recorded rows differ'\n"
        "print(','.join(map(str, d)))\n"
    )
    r = runner.python_serial(["-c", code, str(path)], timeout=60)
    assert r.returncode == 0, r.stderr
    return np.array([int(x) for x in r.stdout.strip().split(",") if x])


@pytest.mark.parametrize("mode", ["between", "during"])
def test_ledger_survives_sigkill(tmp_path, mode, mpi_runner):
    path = tmp_path / "kill.h5"
    extra = {"PRODAMPI_FAULT": "kill:ledger_before_replace#4"} if mode == "during" else {}
    job = REPO / "tests" / "e2e" / "_ledger_kill_job.py"
    r = mpi_runner.run(3, [str(job), str(path), mode], timeout=60, **extra)
    assert r.returncode != 0, "the job should have been killed"
    done = _check_ledger(mpi_runner, path)
    assert np.array_equal(done, np.arange(12)), done  # exactly the two recorded updates


@pytest.mark.parametrize("order", ["netCDF4, h5py", "h5py, netCDF4"])
def test_netcdf4_and_mpi_h5py_in_one_process(tmp_path, order, job_runner):
    code = (
        f"import {order}\n"
        "import numpy as np\n"
        "assert h5py.get_config().mpi\n"
        "p = sys.argv[1]\n"
        "with netCDF4.Dataset(p + '.nc', 'w') as d:\n"
        "    d.createDimension('x', 3); d.createVariable('v', 'f8', ('x',))[:] = [1, 2, 3]\n"
        "with h5py.File(p + '.h5', 'w') as f: f['v'] = np.arange(3.0)\n"
        "with h5py.File(p + '.nc', 'r') as f: assert list(f['v'][:]) == [1, 2, 3]\n"
        "with netCDF4.Dataset(p + '.h5') as d: assert list(d['v'][:]) == [0, 1, 2]\n"
    )
    r = job_runner.python_serial(["-c", "import sys\n" + code, str(tmp_path / "f")], timeout=60)
    assert r.returncode == 0, r.stderr


def test_console_script_and_launchers(job_runner):
    venv_bin = Path(sys.executable).parent
    for cmd in ([str(venv_bin / "prodampi"), "--version"], [sys.executable, "-m", "prodampi", "--version"],
                [str(REPO / "bin" / "prodampi"), "--version"]):
        if not Path(cmd[0]).exists():
            pytest.fail(f"{cmd[0]} missing (is prodampi installed in this venv?)")
        r = subprocess.run(cmd, capture_output=True, text=True, env=job_runner.env(), timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("prodampi "), (cmd, r.stderr)
