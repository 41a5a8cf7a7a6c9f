"""Input-deck validation: every problem is one line naming the field path, the value and what is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prodampi.deck import SCHEMA, load_deck, schema_text, validate_deck
from prodampi.errors import DeckError

REPO = Path(__file__).resolve().parents[2]
GOOD = {"run_dir": "runs/x"}


def problems(data: dict) -> list[str]:
    with pytest.raises(DeckError) as ei:
        validate_deck(data, source="d.yaml", base=Path("."))
    return ei.value.problems


def test_defaults_filled_and_types():
    deck = validate_deck(dict(GOOD), source="d.yaml", base=Path("/tmp"))
    assert deck["models"] == ["clm5", "compas"]
    assert deck["assimilate"]["chains"] == 3
    assert deck["prepare"]["world"]["resolution_deg"] == 2.0
    assert deck["run_dir"] == str(Path("/tmp/runs/x"))


def test_choices_come_from_the_registries():
    import prodampi.deck as deck_mod
    from prodampi.data.profiles import OM_PER_SOC, PAPER_PTF
    from prodampi.inference import SAMPLER_MODES
    from prodampi.io.formats import PROFILE_FORMATS
    from prodampi.soil import MODELS
    from prodampi.soil.options import PRESETS

    f = SCHEMA.fields
    assert f["models"].choices == tuple(MODELS)
    assert f["prepare"].fields["world"].fields["truth"].choices == ("shared", *MODELS)
    assert f["prepare"].fields["profiles"].fields["format"].choices == tuple(PROFILE_FORMATS)
    assert f["assimilate"].fields["mode"].choices == tuple(SAMPLER_MODES)
    assert set(f["model_options"].fields) == set(MODELS)
    assert all(s.fields["preset"].choices == PRESETS for s in f["model_options"].fields.values())
    assert not hasattr(deck_mod, "MODEL_NAMES")
    deck = validate_deck(dict(GOOD), base=Path("."))
    ptf = deck["prepare"]["ptf"]
    assert (ptf["a"], ptf["b"], ptf["c"]) == PAPER_PTF and ptf["om_factor"] == OM_PER_SOC
    assert deck["assimilate"]["mode"] == "paper"
    assert deck["model_options"] == {m: {"preset": "paper"} for m in MODELS}


def test_textbook_presets_and_mode_valid_and_in_provenance():
    from prodampi.provenance import provenance

    deck = validate_deck({**GOOD, "assimilate": {"mode": "textbook"},
                          "model_options": {"clm5": {"preset": "textbook"}, "compas": {"preset": "textbook"}}},
                         base=Path("."))
    assert deck["assimilate"]["mode"] == "textbook"
    rec = provenance(deck)["model_options"]
    assert rec["clm5"]["preset"] == rec["compas"]["preset"] == "textbook"


def test_format_requires_exactly_its_keys(tmp_path):
    from prodampi.io.formats import PROFILE_FORMATS

    (tmp_path / "s.csv").write_text("x\n")
    for fmt in PROFILE_FORMATS.values():
        given = {k: "s.csv" if k != "snapshot_dir" else "." for k in fmt.deck_keys}
        deck = validate_deck({**GOOD, "prepare": {"source": "table", "profiles": {"format": fmt.name, **given}}},
                             base=tmp_path)
        assert all(deck["prepare"]["profiles"][k] for k in fmt.deck_keys)
        for k in fmt.deck_keys:  # each required key, left out, is named
            rest = {kk: v for kk, v in given.items() if kk != k}
            errs = problems_at({**GOOD, "prepare": {"source": "table", "profiles": {"format": fmt.name, **rest}}},
                               tmp_path)
            assert any(e.startswith(f"d.yaml: prepare.profiles.{k} = null: required") for e in errs), errs


def problems_at(data: dict, base: Path) -> list[str]:
    with pytest.raises(DeckError) as ei:
        validate_deck(data, source="d.yaml", base=base)
    return ei.value.problems


def test_int_accepted_for_float_and_converted():
    deck = validate_deck({**GOOD, "prepare": {"world": {"resolution_deg": 1}}}, base=Path("."))
    assert deck["prepare"]["world"]["resolution_deg"] == 1.0
    assert isinstance(deck["prepare"]["world"]["resolution_deg"], float)


def test_all_problems_reported_at_once():
    errs = problems({"seed": "x", "modles": [], "assimilate": {"chains": 0, "iterations": 1.5}})
    text = "\n".join(errs)
    for needle in ("run_dir: missing", "seed = 'x'", "modles: unknown key (did you mean 'models'?)",
                   "assimilate.chains = 0", "assimilate.iterations = 1.5"):
        assert needle in text, text
    assert all(e.startswith("d.yaml: ") for e in errs)


def test_schema_listing_covers_every_section():
    text = "\n".join(schema_text())
    for section in SCHEMA.fields:
        assert section in text


def test_run_dir_override(tmp_path):
    deck_file = tmp_path / "d.yaml"
    deck_file.write_text("run_dir: a\n")
    deck = load_deck(deck_file, run_dir=str(tmp_path / "other"))
    assert deck["run_dir"] == str(tmp_path / "other")
    assert len(deck["_deck_sha256"]) == 64


def test_exponent_without_sign_is_a_number_and_repeated_list_items_where_allowed(tmp_path):
    """PyYAML (YAML 1.1) reads 1e9 as a string; the deck reads it as the number everyone means.  The hidden
    widths may repeat (the paper's 256-512-512-256), the scenario list may not."""
    deck_file = tmp_path / "d.yaml"
    deck_file.write_text("run_dir: a\nassimilate:\n  nse_min: -1e9\nlearn:\n  gelman_rubin_max: 1.0e6\n"
                         "  learning_rate: 1e-2\n  hidden: [8, 8]\n")
    deck = load_deck(deck_file)
    assert deck["assimilate"]["nse_min"] == -1e9 and deck["learn"]["gelman_rubin_max"] == 1e6
    assert deck["learn"]["learning_rate"] == 0.01 and deck["learn"]["hidden"] == [8, 8]
    deck_file.write_text("run_dir: a\nmap:\n  scenarios: [proda, proda]\n")
    with pytest.raises(DeckError, match="must be unique"):
        load_deck(deck_file)


BAD_DECKS = {
    # name: (deck text, field named in the message)
    "wrong_type": ("run_dir: r\nseed: abc\n", "seed = 'abc'"),
    "unknown_key": ("run_dir: r\nmodles: [clm5]\n", "modles: unknown key"),
    "unknown_nested_key": ("run_dir: r\nassimilate:\n  chain: 3\n", "assimilate.chain: unknown key"),
    "negative_count": ("run_dir: r\nassimilate:\n  chains: -2\n", "assimilate.chains = -2"),
    "zero_iterations": ("run_dir: r\nassimilate:\n  iterations: 0\n", "assimilate.iterations = 0"),
    "missing_file": ("run_dir: r\nprepare:\n  source: table\n  profiles:\n    sites: nope.csv\n"
                     "    horizons: nope2.csv\n", "prepare.profiles.sites = 'nope.csv': file not found"),
    "bad_model_name": ("run_dir: r\nmodels: [clm5, compass]\n",
                       "models[1] = 'compass': must be one of clm5, compas"),
    "old_wosis_format": ("run_dir: r\nprepare:\n  source: table\n  profiles:\n    format: wosis\n",
                         "prepare.profiles.format = 'wosis': must be one of isis, afsp, wosis2019, wosis2023"),
    "unknown_preset": ("run_dir: r\nmodel_options:\n  compas:\n    preset: authors\n",
                       "model_options.compas.preset = 'authors': must be one of paper, textbook"),
    "options_for_unknown_model": ("run_dir: r\nmodel_options:\n  clm6:\n    preset: paper\n",
                                  "model_options.clm6: unknown key"),
    "old_sampler_mode": ("run_dir: r\nassimilate:\n  mode: proda\n",
                         "assimilate.mode = 'proda': must be one of paper, textbook"),
    "wosis_without_snapshot": ("run_dir: r\nprepare:\n  source: table\n  profiles:\n    format: wosis2019\n",
                               "prepare.profiles.snapshot_dir = null: required when prepare.source is 'table' and "
                               "prepare.profiles.format is 'wosis2019'"),
    "snapshot_dir_missing": ("run_dir: r\nprepare:\n  profiles:\n    snapshot_dir: no_such_dir\n",
                             "prepare.profiles.snapshot_dir = 'no_such_dir': file not found"),
    "key_not_read_by_format": ("run_dir: r\nprepare:\n  source: table\n  profiles:\n    format: wosis2019\n"
                               "    snapshot_dir: .\n    sites: bad.yaml\n",
                               "prepare.profiles.sites = "),
    "unsupported_om_factor": ("run_dir: r\nprepare:\n  ptf:\n    om_factor: 2.0\n",
                              "prepare.ptf.om_factor = 2.0: only the paper's 1.724"),
    "missing_required": ("seed: 3\n", "run_dir: missing"),
    "out_of_range_float": ("run_dir: r\nprepare:\n  world:\n    resolution_deg: 45\n",
                           "prepare.world.resolution_deg = 45.0"),
    "bad_choice": ("run_dir: r\nprepare:\n  source: wosis_online\n", "prepare.source = 'wosis_online'"),
    "bool_for_int": ("run_dir: r\nassimilate:\n  chains: true\n", "assimilate.chains = True"),
    "section_not_mapping": ("run_dir: r\nlearn: 5\n", "learn = 5"),
    "invalid_yaml": ("run_dir: r\nseed: [1, 2\n", "invalid YAML"),
    "duplicate_key": ("run_dir: r\nseed: 1\nseed: 2\n", "duplicate key 'seed'"),
    "not_a_mapping": ("- just\n- a list\n", "must be a mapping"),
    "table_without_files": ("run_dir: r\nprepare:\n  source: table\n", "prepare.profiles.sites = null"),
    "nan_value": ("run_dir: r\nlearn:\n  learning_rate: .nan\n", "learn.learning_rate"),
    "empty_models": ("run_dir: r\nmodels: []\n", "models = []"),
    "gr_threshold_le_1": ("run_dir: r\nassimilate:\n  gelman_rubin_max: 1.0\n", "assimilate.gelman_rubin_max"),
}


@pytest.mark.parametrize("name", sorted(BAD_DECKS))
def test_bad_deck_in_process(tmp_path, name):
    text, needle = BAD_DECKS[name]
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(DeckError) as ei:
        load_deck(f)
    assert any(needle in p for p in ei.value.problems), ei.value.problems


@pytest.mark.parametrize("name", sorted(BAD_DECKS))
def test_bad_deck_cli_one_line_no_traceback(tmp_path, name):
    """``prodampi validate`` on each bad deck: non-zero exit, one line per problem naming the field, no traceback."""
    text, needle = BAD_DECKS[name]
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "prodampi", "validate", str(f)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("prodampi: error: ") for ln in lines), r.stderr
    assert any(needle in ln for ln in lines), r.stderr


def test_shipped_decks_validate():
    for deck in sorted((REPO / "input_decks").glob("*.yaml")):
        if "shared" in deck.read_text() and not (REPO.parent / "shared" / "data").is_dir():
            continue
        load_deck(deck)


def test_validate_cli_prints_resolved_deck(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text(textwrap.dedent("""\
        run_dir: out
        models: [compas]
        """))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "prodampi", "validate", str(f)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout and "chains: 3" in r.stdout and "- compas" in r.stdout


# ------------------------------------------------------------------- issue 9: limits and never a traceback
def _load_text(tmp_path, text):
    import prodampi.deck as D

    p = tmp_path / "fuzz.yaml"
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    try:
        D.load_deck(p)
    except D.DeckError as e:
        assert e.problems and all(isinstance(m, str) and "\n" not in m and m.startswith(str(p))
                                  for m in e.problems)
        return e.problems
    return None


NASTY = [b"", b"\x00", b"\xff\xfe", b"- a\n- b\n", b"a: [\n", b"\tx: 1\n", b"a:\n  b: 1\n c: 2\n", b"? [a]\n: 1\n",
         b"? {a: 1}\n: 1\n", b"run_dir: x\nprepare: {? [1]: 2}\n", b"&a [*a]\n", b"!!python/object:os.system x\n",
         b"a: !!binary AAAA\n", b"run_dir: !!set {a, b}\n", b"run_dir: 2001-01-01\n", b"1: 2\n", b"null: 1\n",
         b"run_dir: x\nseed: 1e999\n", b"run_dir: x\nseed: .inf\n", b"%YAML 9.9\n---\na: 1\n",
         b"---\na: 1\n---\nb: 2\n",
         b"[" * 5000, b"{a: " * 3000, b"run_dir: x\nprepare: [1, 2]\n", b"run_dir: [x]\n", b"run_dir: ''\n"]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_decks_give_lines_not_tracebacks(tmp_path, text):
    assert _load_text(tmp_path, text)


def test_fuzz_load_deck_never_raises_anything_but_deck_error(tmp_path):
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies

    alphabet = st.sampled_from(list("ab:-[]{}&*!?,'\"\t\n #|>%@`") + ["run_dir", "prepare", " ", "\x00", "é"])

    @hyp.settings(max_examples=300, deadline=None)
    @hyp.given(st.lists(alphabet, max_size=60).map("".join))
    def check(s):
        _load_text(tmp_path, s.encode("utf-8"))

    check()


def test_deck_size_depth_and_alias_limits(tmp_path):
    import time

    import prodampi.deck as D

    big = tmp_path / "big.yaml"
    big.write_bytes(b"run_dir: x\n#" + b"x" * D.MAX_DECK_BYTES)
    with pytest.raises(D.DeckError, match="larger than"):
        D.load_deck(big)
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
    t0 = time.monotonic()
    assert "alias bomb" in _load_text(tmp_path, "run_dir: x\ndescription:\n  " + bomb.replace("\n", "\n  "))[0]
    assert time.monotonic() - t0 < 5
    assert "nested deeper" in _load_text(tmp_path, "run_dir: x\ndescription: " + "[" * 40 + "]" * 40)[0]
    assert _load_text(tmp_path, "run_dir: x\ndescription: " + "[" * 20 + "]" * 20) is not None  # a type error only


@pytest.mark.parametrize("res, ok", [(2.0, True), (0.5, True), (0.25, True), (7.5, True), (7.2, True), (10.0, True),
                                     (7.3, False), (0.7, False), (3.7, False), (2.5, True), (1.5, True)])
def test_resolution_must_tile_the_sphere(tmp_path, res, ok):
    msgs = _load_text(tmp_path, f"run_dir: {tmp_path}/r\nprepare: {{world: {{resolution_deg: {res}}}}}\n")
    assert (msgs is None) == ok, msgs
    if not ok:
        assert "prepare.world.resolution_deg" in msgs[0] and "nearest allowed" in msgs[0]


def test_run_dir_must_be_creatable(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    assert "not a directory" in _load_text(tmp_path, f"run_dir: {f}\n")[0]
    assert "is not a directory" in _load_text(tmp_path, f"run_dir: {f}/a/b\n")[0]
    assert _load_text(tmp_path, f"run_dir: {tmp_path}/new/deep/run\n") is None
    assert not (tmp_path / "new").exists()  # validate creates nothing


def test_malformed_fault_spec_is_an_error(monkeypatch):
    from prodampi.errors import ProdampiError
    from prodampi.parallel import faults

    for bad in ("explode:x", "raise", "raise:", "raise:x@one", "raise:x#0", "kill:x#-1"):
        monkeypatch.setenv("PRODAMPI_FAULT", bad)
        with pytest.raises(ProdampiError, match="PRODAMPI_FAULT"):
            faults.check_fault_spec()
    monkeypatch.setenv("PRODAMPI_FAULT", "raise:x@1#2, kill:y")
    faults.check_fault_spec()
