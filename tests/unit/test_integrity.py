"""Integrity of run files (issue 9, acceptance 1): one flipped bit in any dataset of a finished ``inputs.h5``
is caught by the reader, by ``prodampi verify`` and by prepare's reuse check, which then rebuilds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from prodampi.cli import main
from prodampi.errors import InputDataError
from prodampi.io.h5file import file_digest, verify_file
from prodampi.io.inputs import check_inputs, read_inputs

DECK = "run_dir: out\nseed: 7\nprepare:\n  world:\n    resolution_deg: 10.0\n    n_profiles: 40\n"


def _prodampi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prodampi", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("integrity")
    deck = d / "syn.yaml"
    deck.write_text(DECK)
    r = _prodampi("prepare", str(deck))
    assert r.returncode == 0, r.stderr
    return deck, d / "out"


def _datasets(path: Path) -> list[str]:
    out: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return out


def _flip(path: Path, name: str) -> bool:
    """Flip the lowest bit of the first stored byte of dataset ``name``; False when it stores no bytes."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.size == 0:
            return False
        off = ds.id.get_offset() if ds.chunks is None else ds.id.get_chunk_info(0).byte_offset
    if off is None:
        return False
    with open(path, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 1]))
    return True


def test_every_dataset_flip_is_detected(finished, tmp_path, capsys):
    deck, run = finished
    good = run / "inputs.h5"
    assert verify_file(good) == [] and check_inputs(good) is None
    names = _datasets(good)
    flipped = detected = 0
    skipped = []
    for name in names:
        d = tmp_path / "r"
        d.mkdir(exist_ok=True)
        bad = d / "inputs.h5"
        shutil.copyfile(good, bad)
        if not _flip(bad, name):
            skipped.append(name)
            continue
        flipped += 1
        with pytest.raises(InputDataError) as e:
            read_inputs(bad)
        assert f"/{name} " in str(e.value) and str(bad) in str(e.value)
        why = check_inputs(bad, key=None)
        assert why is not None and f"/{name} " in why  # prepare's reuse decision
        capsys.readouterr()
        assert main(["verify", str(d)]) == 2
        out = capsys.readouterr().out
        assert f"{bad}: dataset /{name} fails its checksum" in out, out
        detected += 1
    print(f"\nflipped {flipped} datasets, detected {detected}; no stored bytes: {skipped}")
    assert flipped == detected and flipped >= len(names) - len(skipped) and flipped > 50
    # only empty datasets have no bytes to flip; they are covered by their hash of dtype + shape
    with h5py.File(good, "r") as f:
        assert all(f[n].size == 0 for n in skipped)


def test_prepare_rebuilds_a_flipped_file_and_status_says_so(finished, tmp_path):
    deck, run = finished
    work = tmp_path / "out"
    shutil.copytree(run, work)
    before = file_digest(run / "inputs.h5", "prepare_key")
    target = "profiles/soc_density_g_m3" if "profiles/soc_density_g_m3" in _datasets(run / "inputs.h5") \
        else _datasets(run / "inputs.h5")[0]
    assert _flip(work / "inputs.h5", target)
    st = _prodampi("status", str(deck), "--run-dir", str(work))
    assert st.returncode == 0 and f"prepare.json says done, but inputs.h5 fails its checksum in /{target}" \
        in st.stdout, st.stdout + st.stderr
    v = _prodampi("verify", str(deck), "--run-dir", str(work))
    assert v.returncode == 2 and f"/{target}" in v.stdout
    r = _prodampi("prepare", str(deck), "--run-dir", str(work))
    assert r.returncode == 0, r.stderr
    assert "rebuilding" in r.stderr and not json.loads((work / "prepare.json").read_text()).get("reused")
    assert verify_file(work / "inputs.h5") == []
    assert file_digest(work / "inputs.h5", "prepare_key") == before  # the rebuilt file equals the original
    assert _prodampi("verify", str(work)).returncode == 0


def test_status_corrupt_summary_and_missing_file(finished, tmp_path):
    deck, run = finished
    work = tmp_path / "out"
    shutil.copytree(run, work)
    (work / "prepare.json").write_text("{not json")
    st = _prodampi("status", str(deck), "--run-dir", str(work))
    assert st.returncode == 0 and "Traceback" not in st.stderr and "prepare.json is unreadable" in st.stdout
    (work / "prepare.json").write_text((run / "prepare.json").read_text())
    (work / "inputs.h5").unlink()
    st = _prodampi("status", str(deck), "--run-dir", str(work))
    assert "prepare.json says done, but inputs.h5 is missing" in st.stdout, st.stdout


def test_status_compares_recorded_digests(finished, tmp_path):
    deck, run = finished
    work = tmp_path / "out"
    shutil.copytree(run, work)
    rec = json.loads((work / "prepare.json").read_text())
    rec["files"] = {"inputs.h5": "0" * 32}
    (work / "prepare.json").write_text(json.dumps(rec))
    st = _prodampi("status", str(deck), "--run-dir", str(work))
    assert "inputs.h5 was replaced after prepare.json was written" in st.stdout, st.stdout
    from prodampi.deck import load_deck
    from prodampi.stages.registry import made_file_digests

    rec["files"] = made_file_digests("prepare", load_deck(str(deck), run_dir=str(work)))
    (work / "prepare.json").write_text(json.dumps(rec))
    st = _prodampi("status", str(deck), "--run-dir", str(work))
    assert "  prepare     done" in st.stdout, st.stdout


def test_key_decides_reuse(finished):
    deck, run = finished
    from prodampi.deck import load_deck
    from prodampi.stages.prepare import prepare_key

    good = run / "inputs.h5"
    assert check_inputs(good, key=prepare_key(load_deck(str(deck)))) is None
    assert "another deck" in check_inputs(good, key="0" * 64)
