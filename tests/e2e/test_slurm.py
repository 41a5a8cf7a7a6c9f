"""The Slurm job script under a real local slurmctld/slurmd (started by tools/slurm_local.sh in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return "is UP" in r.stdout


pytestmark = pytest.mark.skipif(not _slurm_up() and not os.environ.get("PRODAMPI_REQUIRE_SLURM"),
                                reason="no local Slurm running (bash tools/slurm_local.sh starts one)")


def sbatch(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    out = tmp_path / "job-%j.out"
    e = {**os.environ, **env}
    e.setdefault("PRODAMPI_FAULT", "")
    r = subprocess.run(["sbatch", "--wait", "-n", "2", "-o", str(out), "--export=ALL",
                        str(REPO / "slurm" / "prodampi.sbatch"), *args],
                       capture_output=True, text=True, cwd=REPO, env=e, timeout=300)
    logs = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    return r.returncode, r.stdout + r.stderr + logs


def test_sbatch_selftest_two_ranks(tmp_path):
    rc, text = sbatch(tmp_path, "selftest")
    assert rc == 0, text
    assert "selftest: all checks passed on 2 rank(s)" in text


def test_sbatch_failing_rank_fails_the_job(tmp_path):
    rc, text = sbatch(tmp_path, "selftest", PRODAMPI_FAULT="raise:selftest@1")
    assert rc != 0, text
    assert "InjectedFault" in text
