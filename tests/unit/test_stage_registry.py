"""The stage registry: what each stage needs and makes, the prerequisite check, and the CLI's exit 3 line."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from prodampi.errors import StageError
from prodampi.io.inputs import FORMAT_VERSION
from prodampi.stages.registry import (
    RUN_FILES,
    STAGES,
    available_stages,
    check_prerequisites,
    file_states,
    maker,
    missing_prerequisites,
)


def _deck(run_dir: Path) -> dict:
    return {"run_dir": str(run_dir), "models": ["clm5", "compas"]}


def _fake_inputs(path: Path, version: int = FORMAT_VERSION, complete: int = 1) -> None:
    """An ``inputs.h5`` with the root attributes the prerequisite check reads (no data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = version
        f.attrs["complete"] = complete


def test_registry_declares_the_pipeline():
    assert list(STAGES) == ["prepare", "assimilate", "learn", "map", "report"]
    assert STAGES["prepare"].needs == () and STAGES["prepare"].makes == ("inputs",)
    assert STAGES["assimilate"].needs == ("inputs",) and STAGES["assimilate"].makes == ("posterior",)
    assert set(STAGES["learn"].needs) == {"posterior", "inputs"} and STAGES["learn"].makes == ("ensemble",)
    assert set(STAGES["map"].needs) == {"ensemble", "inputs"} and STAGES["map"].makes == ("maps",)
    assert STAGES["report"].needs == ("maps",)
    # every run file is made by exactly one stage, and each need is made by an earlier stage
    makers = [k for s in STAGES.values() for k in s.makes]
    assert sorted(makers) == sorted(RUN_FILES) and len(set(makers)) == len(makers)
    order = list(STAGES)
    for s in STAGES.values():
        for key in s.needs:
            assert order.index(maker(key).name) < order.index(s.name), (s.name, key)
    assert "prepare" in available_stages()


def test_run_file_paths(tmp_path):
    deck = _deck(tmp_path)
    assert RUN_FILES["inputs"].paths(tmp_path, deck) == [tmp_path / "inputs.h5"]
    assert RUN_FILES["maps"].paths(tmp_path, deck) == [tmp_path / "maps_clm5.nc", tmp_path / "maps_compas.nc"]


def test_missing_prerequisite_named_with_the_command_that_makes_it(tmp_path):
    deck = _deck(tmp_path)
    assert missing_prerequisites("prepare", deck) == []
    assert missing_prerequisites("assimilate", deck) == [(tmp_path / "inputs.h5", "missing", "prepare")]
    with pytest.raises(StageError) as ei:
        check_prerequisites(["assimilate"], deck, "my.yaml")
    assert ei.value.exit_code == 3
    assert ei.value.problems == [f"assimilate needs {tmp_path / 'inputs.h5'}, which is missing; "
                                 "make it with: prodampi prepare my.yaml"]
    with pytest.raises(StageError) as ei:
        check_prerequisites(["learn"], deck, "my.yaml", run_dir_arg="rd")
    assert f"learn needs {tmp_path / 'posterior.h5'}, which is missing" in ei.value.problems[0]
    assert ei.value.problems[0].endswith("make it with: prodampi assimilate my.yaml --run-dir rd")


def test_unusable_prerequisite_says_why(tmp_path):
    deck = _deck(tmp_path)
    _fake_inputs(tmp_path / "inputs.h5", complete=0)
    [(_, why, _)] = missing_prerequisites("assimilate", deck)
    assert why.startswith("incomplete")
    _fake_inputs(tmp_path / "inputs.h5", version=FORMAT_VERSION + 1)
    [(_, why, _)] = missing_prerequisites("assimilate", deck)
    assert f"format version {FORMAT_VERSION + 1}" in why
    (tmp_path / "inputs.h5").write_bytes(b"not hdf5")
    [(_, why, _)] = missing_prerequisites("assimilate", deck)
    assert "not a readable HDF5 file" in why


def test_present_prerequisite_then_stage_not_available(tmp_path):
    deck = _deck(tmp_path)
    _fake_inputs(tmp_path / "inputs.h5")
    assert missing_prerequisites("assimilate", deck) == []
    if "assimilate" in available_stages():  # pragma: no cover - once the assimilate issue lands
        return
    with pytest.raises(StageError) as ei:
        check_prerequisites(["assimilate"], deck, "my.yaml")
    assert ei.value.exit_code == 3 and "stage 'assimilate' is not available" in ei.value.problems[0]


def test_run_counts_files_made_by_earlier_stages(tmp_path):
    deck = _deck(tmp_path)
    check_prerequisites(["prepare"], deck, "d.yaml")  # nothing needed
    assert missing_prerequisites("assimilate", deck, made={"inputs"}) == []
    with pytest.raises(StageError) as ei:  # the chain cannot skip the stage that makes posterior.h5
        check_prerequisites(["prepare", "learn"], deck, "d.yaml")
    assert "learn needs" in ei.value.problems[0] and "posterior.h5" in ei.value.problems[0]


def test_file_states_for_status(tmp_path):
    deck = _deck(tmp_path)
    st = file_states(deck)
    assert st["prepare"] == {str(tmp_path / "inputs.h5"): "missing"}
    assert set(st["map"]) == {str(tmp_path / "maps_clm5.nc"), str(tmp_path / "maps_compas.nc")}
    _fake_inputs(tmp_path / "inputs.h5")
    assert file_states(deck)["prepare"] == {str(tmp_path / "inputs.h5"): "ok"}


# ------------------------------------------------------------------------------------------------ the real CLI
def _deck_file(tmp_path: Path) -> Path:
    deck = tmp_path / "d.yaml"
    deck.write_text("run_dir: run\nprepare:\n  world:\n    resolution_deg: 5.0\n")
    return deck


def test_cli_assimilate_on_empty_run_dir_exits_3_naming_inputs(tmp_path, job_runner):
    deck = _deck_file(tmp_path)
    run = tmp_path / "empty"
    run.mkdir()
    r = job_runner.prodampi(["assimilate", str(deck), "--run-dir", str(run)], timeout=120)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [f"prodampi: error: assimilate needs {run / 'inputs.h5'}, which is missing; "
                     f"make it with: prodampi prepare {deck} --run-dir {run}"], r.stderr
    assert list(run.iterdir()) == []  # nothing was written


def test_cli_status_reads_the_registry(tmp_path, job_runner):
    deck = _deck_file(tmp_path)
    r = job_runner.prodampi(["status", str(deck), "--json"], timeout=120)
    assert r.returncode == 0, r.stderr
    stages = json.loads(r.stdout)["stages"]
    assert list(stages) == list(STAGES)
    assert stages["prepare"]["status"] == "not run"
    assert stages["prepare"]["files"] == {str(tmp_path / "run" / "inputs.h5"): "missing"}


def test_asking_which_stages_exist_imports_no_torch():
    """Availability is found, not imported, and the learn stage's module imports torch only when it runs: a
    `prodampi prepare` does not pay seconds of torch import, nor can a SIGTERM land inside it (seen in CI:
    a half-initialised torch and a traceback)."""
    import subprocess
    import sys

    code = ("import sys, prodampi.stages.registry as r; assert 'learn' in r.available_stages(); "
            "import prodampi.stages.learn; assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
