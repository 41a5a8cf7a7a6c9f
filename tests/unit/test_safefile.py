"""The one safe writer (io/safefile), the run-directory lock (parallel/lock), signals (parallel/signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prodampi.errors import StageError
from prodampi.io import safefile
from prodampi.io.safefile import TMP_PREFIX, atomic_output, clean_stale_temps, write_bytes_atomic, write_json_atomic
from prodampi.parallel import lock, signals
from prodampi.parallel.comm import _open_log

REPO = Path(__file__).resolve().parents[2]


def test_write_replaces_symlink_at_final_name_never_writes_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / "prepare.json").symlink_to(outside)
    write_json_atomic(run / "prepare.json", {"a": 1})
    assert outside.read_text() == "precious"
    assert not (run / "prepare.json").is_symlink() and json.loads((run / "prepare.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in run.iterdir()) == ["prepare.json"]


def test_temp_name_random_and_exclusive(tmp_path, monkeypatch):
    a, b = safefile.temp_name("x.json"), safefile.temp_name("x.json")
    assert a != b and a.startswith(f"{TMP_PREFIX}{os.getpid()}-") and a.endswith("-x.json")
    # a symlink planted under the very temp name chosen is refused (O_EXCL|O_NOFOLLOW), not followed
    outside = tmp_path / "outside"
    outside.write_text("precious")
    planted = "PLANTED"
    monkeypatch.setattr(safefile, "temp_name", lambda n: planted)
    (tmp_path / planted).symlink_to(outside)
    with pytest.raises(FileExistsError):
        write_bytes_atomic(tmp_path / "f", b"data")
    assert outside.read_text() == "precious" and not (tmp_path / "f").exists()


def test_failure_before_replace_leaves_old_file_and_no_temp(tmp_path):
    p = tmp_path / "f.json"
    write_json_atomic(p, {"v": 1})

    def boom():
        raise signals.Interrupted(signal.SIGTERM)

    with pytest.raises(signals.Interrupted):
        write_json_atomic(p, {"v": 2}, before_replace=boom)
    with pytest.raises(signals.Interrupted):
        with atomic_output(p) as tmp:
            tmp.write_text("partial")
            boom()
    assert json.loads(p.read_text()) == {"v": 1} and sorted(x.name for x in tmp_path.iterdir()) == ["f.json"]


def test_atomic_output_private_dir_and_symlinked_final(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / "inputs.h5").symlink_to(outside)
    with atomic_output(run / "inputs.h5") as tmp:
        assert tmp.parent.parent == run and tmp.parent.name.startswith(TMP_PREFIX)
        assert (os.stat(tmp.parent).st_mode & 0o777) == 0o700
        tmp.write_bytes(b"new")
    assert outside.read_text() == "precious"
    assert not (run / "inputs.h5").is_symlink() and (run / "inputs.h5").read_bytes() == b"new"
    assert sorted(p.name for p in run.iterdir()) == ["inputs.h5"]


def test_clean_stale_temps_dead_pid_and_older_than_lock(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "logs").mkdir()
    stale = tmp_path / f"{TMP_PREFIX}{dead}-abcd-inputs.h5"
    stale.write_text("x")
    stale_dir = tmp_path / "logs" / f"{TMP_PREFIX}{dead}-ef-x"
    stale_dir.mkdir()
    live_old = tmp_path / f"{TMP_PREFIX}1-aa-prepare.json"  # pid 1 is alive; old -> stale when older_than
    live_old.write_text("x")
    os.utime(live_old, (time.time() - 100, time.time() - 100))
    mine = tmp_path / safefile.temp_name("mine")
    mine.write_text("x")
    keep = tmp_path / "inputs.h5"
    keep.write_text("x")
    removed = clean_stale_temps(tmp_path)
    assert set(removed) == {stale, stale_dir}
    assert live_old.exists() and mine.exists()
    assert clean_stale_temps(tmp_path, older_than=time.time() - 10) == [live_old]
    assert mine.exists() and keep.exists()


def test_log_file_never_written_through_symlink(tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("precious")
    log = tmp_path / "prepare_p0.log"
    log.symlink_to(outside)
    fh = _open_log(log)
    fh.write("line\n")
    fh.close()
    assert outside.read_text() == "precious" and not log.is_symlink() and log.read_text() == "line\n"
    fh = _open_log(log)  # appended on restart
    fh.write("two\n")
    fh.close()
    assert log.read_text() == "line\ntwo\n"


def test_lock_second_holder_refused_naming_first(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, time\nfrom prodampi.parallel import lock\nlock.acquire(sys.argv[1])\n"
            "print('held', flush=True)\ntime.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert p.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StageError) as ei:
            lock.acquire(run)
        assert time.monotonic() - t0 < 1.0
        msg = ei.value.problems[0]
        assert len(ei.value.problems) == 1 and f"pid {p.pid}" in msg and "host " in msg and "started " in msg
    finally:
        p.kill()
        p.wait()
    lock.acquire(run)  # released by the kernel when the holder died
    try:
        assert lock.acquire(run) > 0  # re-entrant in the holding process
        assert json.loads((run / lock.LOCK_NAME).read_text())["pid"] == os.getpid()
        assert (run / lock.MARKER_NAME).is_file()
    finally:
        lock.release(run)


def test_lock_file_symlink_not_followed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / lock.MARKER_NAME).write_text("")
    outside = tmp_path / "outside"
    outside.write_text("precious")
    (run / lock.LOCK_NAME).symlink_to(outside)
    with pytest.raises(StageError, match="cannot open the run-directory lock"):
        lock.acquire(run)
    assert outside.read_text() == "precious"


def test_foreign_run_dir_refused_unless_empty_or_marked(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    (d / "thesis.tex").write_text("x")
    with pytest.raises(StageError, match="prodampi did not make") as ei:
        lock.check_run_dir(d)
    assert str(d) in ei.value.problems[0]
    (d / lock.MARKER_NAME).write_text("")
    lock.check_run_dir(d)
    old = tmp_path / "old"  # a run directory of an older version: only prodampi's names
    old.mkdir()
    for n in ("inputs.h5", "prepare.json", "logs"):
        (old / n).write_text("")
    lock.check_run_dir(old, ["prepare"])
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(StageError, match="not a directory"):
        lock.check_run_dir(f)


def test_sigterm_raises_interrupted_with_documented_code():
    code = ("import os, signal, sys\nfrom prodampi.parallel import signals\nsignals.install()\n"
            "os.kill(os.getpid(), signal.SIGUSR1)\nassert signals.checkpoint_requested()\n"
            "assert not signals.checkpoint_requested()\n"
            "try:\n    os.kill(os.getpid(), signal.SIGTERM)\n    import time; time.sleep(5)\n"
            "except signals.Interrupted as e:\n    print(e.exit_code, e.problems[0]); sys.exit(e.exit_code)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 143, r.stderr
    assert r.stdout.startswith("143 interrupted by SIGTERM")
    assert signals.EXIT_SIGINT == 130
