"""One CLI vocabulary, outputs checked before work, catalogues that validate (issue 17).

Every VOTable any sub-command writes is parsed by astropy with every VO
warning turned into an exception, and every field's UCD is checked against
astropy's copy of the UCD1+ controlled vocabulary.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable import parse
from astropy.io.votable.ucd import check_ucd

from pyspec.catalogue import read_catalogue
from pyspec.cli import COMMANDS, build_parser, main
from pyspec.data import sample_files, sample_index_path
from pyspec.data.sample_store import build_sample_store

QUERY = "spec-57278-EG224429N215706B01_sp01-001.fits.gz"

# the common options and the sub-commands that must take each (README "Common options")
WRITES_CATALOGUE = {"query", "queries", "search", "measure", "evaluate", "spread"}
COMMON = {
    "--out": WRITES_CATALOGUE | {"ingest", "simulate", "train", "build", "demo"},
    "--format": WRITES_CATALOGUE,
    "--overwrite": WRITES_CATALOGUE | {"simulate", "train", "build", "demo"},
    "--quiet": set(COMMANDS) - {"info", "verify", "active"},
    "--num-threads": {"ingest", "simulate", "train", "build", "query", "queries", "search",
                      "evaluate", "spread", "demo", "measure"},
    "--seed": {"simulate", "train", "build", "queries", "evaluate", "demo"},
    "--n-bits": {"train", "build", "evaluate", "demo"},
    "--hidden": {"train", "build", "evaluate"},
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("option", sorted(COMMON))
def test_every_subcommand_takes_the_common_options(option) -> None:
    parsers = _subparsers()
    missing = sorted(c for c in COMMON[option] if option not in _options(parsers[c]))
    assert missing == [], f"{option} missing from {missing}"
    for name, p in parsers.items():  # one spelling: the short forms mean the same everywhere
        opts = _options(p)
        if "-o" in opts:
            assert "--out" in opts, name
        if "-q" in opts:
            assert "--quiet" in opts, name


def test_verbose_before_or_after_the_subcommand(capsys) -> None:
    parsers = _subparsers()
    for name, p in parsers.items():
        assert "-v" in _options(p), name
    active = next(a for a in parsers["active"]._actions
                  if isinstance(a, argparse._SubParsersAction))
    assert all("-v" in _options(p) for p in active.choices.values())
    parser = build_parser()
    argv = ["build", "s", "-o", "e"]
    assert parser.parse_args(["-v", *argv]).verbose
    assert parser.parse_args([*argv, "-v"]).verbose
    assert not parser.parse_args(argv).verbose
    # -v on either side shows the traceback instead of the one-line error
    assert main(["info", "/nonexistent/pyspec"]) == 1
    for argv in (["-v", "info", "/nonexistent/pyspec"], ["info", "/nonexistent/pyspec", "-v"]):
        with pytest.raises(FileNotFoundError):
            main(argv)


@pytest.mark.parametrize(("argv", "dest", "value", "new"), [
    (["build", "s", "-o", "e", "--bits", "64"], "n_bits", 64, "--n-bits"),
    (["build", "s", "-o", "e", "--random-state", "3"], "seed", 3, "--seed"),
    (["evaluate", "--simulate", "20", "-o", "t.ecsv", "--pil-hidden", "8,4"], "hidden", (8, 4),
     "--hidden"),
    (["measure", "x.fits", "--output", "m.ecsv"], "out", "m.ecsv", "--out"),
    (["ingest", "d", "-o", "s", "--workers", "2"], "num_threads", 2, "--num-threads"),
])
def test_old_spellings_are_deprecated_aliases(argv, dest, value, new, capsys) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "deprecated" in err[0]
    assert new in err[0]


def _error(capsys, argv: list, fragment: str) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert fragment in err, err
    return err


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A sample store (real + 60 simulated spectra) and a 64-bit LSH engine over it."""
    root = tmp_path_factory.mktemp("vocab")
    build_sample_store(root / "store", 60, seed=1)
    assert main(["build", str(root / "store"), "-o", str(root / "engine"), "--model", "lsh",
                 "--n-bits", "64", "-q"]) == 0
    return root


def test_outputs_are_checked_before_any_work(small, tmp_path, capsys) -> None:
    # an unknown suffix is refused before the (missing) inputs are even looked at
    _error(capsys, ["measure", tmp_path / "missing.fits", "-o", tmp_path / "m.txt"], "suffix")
    _error(capsys, ["evaluate", "--simulate", "50", "-o", tmp_path / "ev.dat"], "suffix")
    _error(capsys, ["query", sample_files()[0], "-e", small / "engine", "-o",
                    tmp_path / "nodir" / "t.ecsv"], "does not exist")
    # every catalogue-writing command refuses to replace an output without --overwrite
    taken = tmp_path / "taken.ecsv"
    taken.write_text("keep me")
    for argv in (["query", sample_files()[0], "-e", small / "engine"],
                 ["queries", small / "store"],
                 ["search", "-e", small / "engine", "--targets", small / "store"],
                 ["measure", sample_files()[0]],
                 ["evaluate", "--simulate", "50"],
                 ["spread", "--store", small / "store", "--labels", taken]):
        _error(capsys, [*argv, "-o", taken], "--overwrite")
    assert taken.read_text() == "keep me"
    _error(capsys, ["build", small / "store", "-o", small / "engine"], "--overwrite")
    _error(capsys, ["simulate", "--n", "5", "-o", small / "store"], "--overwrite")


def test_ingest_and_simulate_refusals(small, tmp_path, capsys) -> None:
    out = tmp_path / "st"
    _error(capsys, ["ingest", tmp_path / "nonexistent", "-o", out], "SOURCE not found")
    assert not out.exists()  # no empty store left behind
    _error(capsys, ["ingest", sample_files()[0], "-o", small / "engine"], "engine directory")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a store")
    _error(capsys, ["ingest", sample_files()[0], "-o", tmp_path / "notes"], "no spectrum store")
    err = _error(capsys, ["simulate", "--n", "5", "-o", tmp_path / "sim", "--classes",
                          "FOO=1"], "--classes")
    assert "FOO" in err
    assert "STAR" in err  # names the valid classes
    assert not (tmp_path / "sim").exists()


def test_info_describes_store_engine_and_model(small, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert main(["info", str(small / "store")]) == 0
    out = capsys.readouterr().out
    assert "spectrum store" in out
    assert "3921 pixels" in out  # the lamost grid
    assert "similarity" in out  # the preprocessing recipe
    assert main(["info", str(small / "engine")]) == 0
    out = capsys.readouterr().out
    assert "engine (hamming index)" in out
    assert "LSHHasher" in out
    assert '"n_bits": 64' in out
    assert re.search(r"search \(k=10\) +scan \(auto: \d+ codes < 65536", out)  # small: scan
    flux = tmp_path / "flux.npy"
    np.save(flux, np.random.default_rng(0).standard_normal((40, 30)).astype(np.float32))
    assert main(["train", str(flux), "-o", str(tmp_path / "m.bin"), "--model", "lsh",
                 "--n-bits", "32", "-q"]) == 0
    assert main(["info", str(tmp_path / "m.bin")]) == 0
    out = capsys.readouterr().out
    assert "LSH model" in out
    assert "input pixels" in out


def _check_votable(path: Path, recipe: bool = True) -> None:
    """astropy's parser with every VO warning as an error; UCDs from the controlled list."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vot = parse(str(path), verify="exception")
    table = vot.get_first_table()
    for field in table.fields:
        assert field.description, f"{path.name}: {field.name} has no description"
        assert "(pyspec column)" not in field.description, f"{path.name}: {field.name}"
        assert field.ucd, f"{path.name}: {field.name} has no UCD"
        assert check_ucd(field.ucd, check_controlled_vocabulary=True), (field.name, field.ucd)
    names = {f.name for f in table.fields}
    if {"ra", "dec"} & names:
        systems = vot.resources[0].coordinate_systems
        assert [s.system for s in systems] == ["ICRS"]
        assert all(f.ref == systems[0].ID for f in table.fields if f.name in ("ra", "dec"))
    infos = {i.name for i in table.infos}
    assert {"pyspec_version", "created_utc", "command", "inputs"} <= infos, infos
    if recipe:  # made from a store or an engine: its preprocessing recipe
        recipes = [i.value for i in table.infos if i.name == "recipe"]
        assert recipes, path.name
        assert '"similarity"' in recipes[0], recipes


def _labels_csv(store_dir: Path, path: Path) -> Path:
    from pyspec.store import SpectrumStore

    store = SpectrumStore.open(store_dir)
    ids = np.asarray(store.meta["id"]).astype(str)[:40]
    cls = np.asarray(store.meta["class"]).astype(str)[:40]
    path.write_text("id,label\n" + "".join(f"{i},{c}\n" for i, c in zip(ids, cls, strict=True)))
    return path


def test_every_votable_validates(small, tmp_path, capsys) -> None:
    query = next(f for f in sample_files() if f.name == QUERY)
    labels = _labels_csv(small / "store", tmp_path / "labels.csv")
    runs = {
        "query": ["query", query, "-e", small / "engine", "-k", "5"],
        "queries": ["queries", small / "store", "--groups", "2", "--subclusters", "2",
                    "--components", "5"],
        "search": ["search", "-e", small / "engine", "--queries", tmp_path / "queries.vot",
                   "-k", "3"],
        "targets": ["search", "-e", small / "engine", "--targets", small / "store"],
        "measure": ["measure", *sample_files()[:2], "--no-xcorr"],
        "evaluate": ["evaluate", "--simulate", "60", "--n-bits", "32", "--hashers", "lsh",
                     "--n-queries", "10"],
        "spread": ["spread", "--store", small / "store", "--labels", labels, "--all"],
    }
    for name, argv in runs.items():
        out = tmp_path / f"{name}.vot"
        assert main([str(a) for a in [*argv, "-o", out, "-q"]]) == 0, capsys.readouterr().err
        _check_votable(out, recipe=name not in ("measure", "evaluate"))
    assert read_catalogue(tmp_path / "measure.vot")["ew_Ha"].unit == "Angstrom"


def test_measure_and_evaluate_write_real_fits(tmp_path) -> None:
    assert main(["measure", str(sample_files()[0]), "--no-xcorr", "-o",
                 str(tmp_path / "m.fits"), "-q"]) == 0
    assert main(["evaluate", "--simulate", "60", "--n-bits", "32", "--hashers", "lsh",
                 "--n-queries", "10", "-o", str(tmp_path / "ev.fits"), "-q"]) == 0
    for name, command in (("m.fits", "pyspec measure"), ("ev.fits", "pyspec evaluate")):
        with fits.open(tmp_path / name) as hdus:  # a FITS file, not ECSV text
            assert hdus[1].header["XTENSION"] == "BINTABLE"
        table = read_catalogue(tmp_path / name)
        assert table.meta["command"] == command
        assert table.meta["pyspec_version"]
    assert read_catalogue(tmp_path / "m.fits")["file"][0] == str(sample_files()[0])
    # the labels CSV format of --fits-index: the shipped sample index is one
    assert "file" in sample_index_path().read_text().splitlines()[0].split(",")


def test_phase_progress_and_ingest_total(tmp_path, monkeypatch, capsys) -> None:
    import time

    from pyspec.commands import _workflow
    from pyspec.ingest import ingest

    monkeypatch.setattr(_workflow, "show_progress", lambda args: True)
    with _workflow.fit_progress(argparse.Namespace(quiet=False), "fit PILHasher"):
        time.sleep(1.2)
    err = capsys.readouterr().err
    assert "fit PILHasher: 00:01" in err  # the elapsed time of a phase without its own bar
    ingest([str(p) for p in sample_files()[:3]], tmp_path / "st", progress=True)
    assert "3/3" in capsys.readouterr().err  # the ingest bar knows its total


def test_num_threads_limits_the_math_of_measure_and_active() -> None:
    import argparse

    import numba
    from threadpoolctl import threadpool_info

    from pyspec.cli import build_parser
    from pyspec.commands._workflow import math_threads

    for argv in (["measure", "x.fits", "-o", "m.ecsv", "--num-threads", "1"],
                 ["active", "status", "--state", "st", "--num-threads", "1"]):
        assert build_parser().parse_args(argv).num_threads == 1
    before = numba.get_num_threads()
    with math_threads(argparse.Namespace(num_threads=1)):
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="--num-threads"), \
            math_threads(argparse.Namespace(num_threads=0)):
        pass
