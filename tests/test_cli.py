"""CLI end to end on the shipped sample: demo, build, query, queries, search; bad input."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table
from matplotlib.image import imread

from pyspec.catalogue import read_catalogue
from pyspec.cli import main
from pyspec.data import sample_files

QUERY = "spec-57278-EG224429N215706B01_sp01-001.fits.gz"


def neighbour_plot_rows(png: Path) -> tuple[int, int]:
    """(pixel rows, pixels of the red query curve) of a query plot."""
    img = imread(png)
    assert img.shape[1] == 1100  # 10 inches at 110 dpi
    red = (img[..., 0] > 0.7) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)
    return img.shape[0], int(red.sum())


def run_cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "pyspec-demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out), "--n-simulated", "600"])
    assert code == 0
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def demo_dir(demo_run):
    return demo_run[0]


def test_demo_outputs(demo_dir) -> None:
    for name in ("store", "engine", "query.ecsv", "query.png", "queries.ecsv", "candidates.ecsv"):
        assert (demo_dir / name).exists(), name
    table = Table.read(demo_dir / "query.ecsv")
    assert len(table) == 10
    assert Path(table["file"][0]).name == QUERY and table["distance"][0] == 0  # itself, first
    # two-stage search: codes select, exact squared L2 on the stored spectra orders
    assert table["distance"].unit is None and table["ra"].unit == u.deg
    assert table.meta["model"]["n_bits"] == 256
    cands = read_catalogue(demo_dir / "candidates.ecsv")
    queries = read_catalogue(demo_dir / "queries.ecsv")
    assert set(queries["id"]) <= set(cands["id"])  # each query retrieves itself
    assert cands["n_queries"].min() >= 1 and cands["n_queries"].max() <= len(queries)
    height, red = neighbour_plot_rows(demo_dir / "query.png")
    assert red > 500  # the query, in red
    # one band per neighbour: 10 neighbours below the query (pyspec.plotting's layout)
    assert abs(height - (1.2 + 0.75 * (len(table) + 1)) * 110) < 1


def test_demo_prints_where_outputs_are(demo_run) -> None:
    path, out = demo_run
    assert str(path.resolve()) in out
    assert "query.png" in out and "candidates.ecsv" in out


def test_build_query_queries_search(demo_dir, tmp_path, capsys) -> None:
    store = demo_dir / "store"
    eng = tmp_path / "eng"
    code, out, err = run_cli(capsys, "build", store, "--out", eng, "--model", "lsh",
                             "--n-bits", "64", "--num-threads", "1")
    assert code == 0, err
    assert "LSHHasher" in out
    code, out, err = run_cli(capsys, "build", store, "--out", tmp_path / "pil", "--n-bits", "64",
                             "--hidden", "128,96")
    assert code == 0, err
    assert "PILHasher" in out

    query = [f for f in sample_files() if f.name == QUERY][0]
    code, out, err = run_cli(capsys, "query", query, "--engine", eng, "-k", "5",
                             "--out", tmp_path / "t.fits", "--plot", tmp_path / "p.png")
    assert code == 0, err
    t = read_catalogue(tmp_path / "t.fits")
    assert len(t) == 5 and Path(t["file"][0]).name == QUERY and t["distance"][0] == 0
    assert t["ra"].unit == u.deg
    height, red = neighbour_plot_rows(tmp_path / "p.png")
    assert red > 500
    assert abs(height - (1.2 + 0.75 * 6) * 110) < 1  # -k 5

    code, out, err = run_cli(capsys, "queries", store, "--class", "STAR", "--groups", "3",
                             "--subclusters", "2", "--components", "5", "--num-threads", "1",
                             "--out", tmp_path / "q.ecsv")
    assert code == 0, err
    q = read_catalogue(tmp_path / "q.ecsv")
    assert 1 <= len(q) <= 6 and set(q["class"]) == {"STAR"}

    code, out, err = run_cli(capsys, "search", "--engine", eng, "--queries", tmp_path / "q.ecsv",
                             "--fraction", "0.05", "--out", tmp_path / "c.vot")
    assert code == 0, err
    c = read_catalogue(tmp_path / "c.vot")
    assert set(q["id"]) <= set(c["id"])
    assert c["best_distance"].unit == u.bit
    assert c.meta["command"] == "pyspec search"

    code, out, err = run_cli(capsys, "search", "--engine", eng, "--queries", query, "-k", "3",
                             "--out", tmp_path / "c2.ecsv")
    assert code == 0, err
    assert len(read_catalogue(tmp_path / "c2.ecsv")) == 3

    code, out, err = run_cli(capsys, "search", "--engine", eng, "--targets", store,
                             "--out", tmp_path / "m.csv")
    assert code == 0, err
    m = Table.read(tmp_path / "m.csv")
    n = len(m)
    assert n > 600 and np.all(m["template_distance"] == 0)  # every target is a template


@pytest.mark.parametrize("command", ["build", "query", "queries", "search", "demo"])
def test_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--num-threads" in capsys.readouterr().out


def _one_line_error(code, err, fragment):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and fragment in lines[0]


def test_bad_input(demo_dir, tmp_path, capsys) -> None:
    eng = demo_dir / "engine"
    code, _, err = run_cli(capsys, "query", tmp_path / "missing.fits", "--engine", eng)
    _one_line_error(code, err, "not found")
    text = tmp_path / "notes.fits"
    text.write_text("hello, this is not FITS\n")
    code, _, err = run_cli(capsys, "query", text, "--engine", eng)
    _one_line_error(code, err, "notes.fits")
    code, _, err = run_cli(capsys, "query", sample_files()[0], "--engine", tmp_path)
    _one_line_error(code, err, "engine.json")
    code, _, err = run_cli(capsys, "query", sample_files()[0], "--engine", tmp_path / "nope")
    _one_line_error(code, err, "not found")
    code, _, err = run_cli(capsys, "query", sample_files()[0], "--engine", eng, "-k", "0")
    _one_line_error(code, err, "-k")
    code, _, err = run_cli(capsys, "query", sample_files()[0], "--engine", eng,
                           "--out", tmp_path / "x.txt")
    _one_line_error(code, err, "suffix")
    code, _, err = run_cli(capsys, "build", tmp_path / "nostore", "--out", tmp_path / "e")
    _one_line_error(code, err, "not found")
    code, _, err = run_cli(capsys, "build", demo_dir / "store", "--out", tmp_path / "e",
                           "--hidden", "4000")  # more units than training spectra
    _one_line_error(code, err, "hidden")
    code, _, err = run_cli(capsys, "build", demo_dir / "store", "--out", demo_dir / "engine")
    _one_line_error(code, err, "exists")
    code, _, err = run_cli(capsys, "search", "--engine", eng, "--queries", demo_dir / "store",
                           "--fraction", "2")
    _one_line_error(code, err, "fraction")


def test_engine_from_a_different_grid(demo_dir, tmp_path, capsys) -> None:
    """A store on another grid used with the engine: one-line error, exit code 1."""
    from pyspec.io import read_spectra
    from pyspec.preprocess import Preprocessor
    from pyspec.store import SpectrumStore

    prep = Preprocessor("pq-2A", normalise="l2")
    read = read_spectra(sample_files()[:5])
    batch = prep.apply(read.spectra)
    other = tmp_path / "other"
    with SpectrumStore.create(other, prep.grid, preprocessing=prep.to_dict()) as w:
        w.append(batch.flux, batch.ivar, [s.meta for s in read.spectra])
    eng = demo_dir / "engine"
    code, _, err = run_cli(capsys, "search", "--engine", eng, "--queries", other, "-k", "2")
    _one_line_error(code, err, "different wavelength grid")
    code, _, err = run_cli(capsys, "search", "--engine", eng, "--targets", other)
    _one_line_error(code, err, "different wavelength grid")
    # an engine whose store was replaced by one on another grid
    import shutil

    moved = tmp_path / "demo-copy"
    shutil.copytree(demo_dir, moved)
    shutil.rmtree(moved / "store")
    shutil.copytree(other, moved / "store")
    code, _, err = run_cli(capsys, "query", sample_files()[0], "--engine", moved / "engine",
                           "--rerank", "20")
    _one_line_error(code, err, "different wavelength grid")


def test_search_measure(demo_dir, tmp_path, capsys) -> None:
    """--measure appends the line-measurement columns (when that module is installed)."""
    code, _, err = run_cli(capsys, "search", "--engine", demo_dir / "engine", "--queries",
                           demo_dir / "queries.ecsv", "-k", "2", "--measure",
                           "--out", tmp_path / "m.ecsv")
    assert code == 0, err
    t = read_catalogue(tmp_path / "m.ecsv")
    assert "z_cl" in t.colnames and "n_queries" in t.colnames
    assert len(t) >= 2
