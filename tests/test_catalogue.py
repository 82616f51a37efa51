"""Catalogue writing/reading: units, descriptions, UCDs and provenance survive each format."""

from __future__ import annotations

import json
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io.votable import parse
from astropy.table import Table

from pyspec.catalogue import (
    COLUMNS,
    annotate,
    catalogue_format,
    provenance,
    read_catalogue,
    restamp,
    write_catalogue,
)


@pytest.fixture
def table() -> Table:
    t = Table()
    t["id"] = np.array(["101009", "353301001", "ümlaut-7"])
    t["ra"] = [332.206665, 341.064566, 10.5]
    t["dec"] = [-1.868653, 19.566591, -80.0]
    t["class"] = ["STAR", "STAR", "GALAXY"]
    t["z"] = [-0.00011521, 4.033e-05, np.nan]
    t["snr_r"] = np.array([25.05, 172.27, 3.1], np.float32)
    t["n_queries"] = np.array([3, 1, 7], np.int64)
    t["best_distance"] = np.array([12, 0, 40], np.int32)
    t["flag"] = np.array([1, -1, 0], np.int8)
    t["extra"] = [1.5, 2.5, 3.5]
    t["extra"].unit = u.AA
    t.meta.update(provenance(command="pyspec search", model={"n_bits": 256, "hidden": [512, 256]},
                             inputs=["a.fits", "b.fits"], engine={"path": "/x", "kind": "hamming"}))
    annotate(t, units={"best_distance": "bit"})
    return t


def test_provenance_block() -> None:
    p = provenance(command="c", inputs=["x"], k=3)
    assert p["command"] == "c" and p["inputs"] == ["x"] and p["k"] == 3
    assert p["created_utc"].endswith("Z") and p["pyspec_version"]
    json.dumps(p)  # serialisable


def test_restamp_copies_the_block_with_a_new_time_and_items() -> None:
    import datetime as dt

    block = provenance(command="query", engine={"path": "/e", "grid": None},
                       model={"class": "PILHasher", "hidden": [512, 384]})
    block["created_utc"] = "2000-01-01T00:00:00Z"
    stamped = restamp(block, k=np.int64(10), rerank=0)
    assert stamped["k"] == 10 and type(stamped["k"]) is int and stamped["rerank"] == 0
    assert list(stamped)[:6] == list(block)  # the block's items first, in its order
    now = dt.datetime.strptime(stamped["created_utc"], "%Y-%m-%dT%H:%M:%SZ")
    utc_now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((utc_now - now).total_seconds()) < 5
    stamped["model"]["hidden"].append(1)  # a result's meta shares nothing with the block
    stamped["engine"]["path"] = "/other"
    assert block["model"]["hidden"] == [512, 384] and block["engine"]["path"] == "/e"
    assert "k" not in block and block["created_utc"] == "2000-01-01T00:00:00Z"


def test_annotate_known_columns(table: Table) -> None:
    assert table["ra"].unit == u.deg
    assert table["ra"].info.meta["ucd"] == "pos.eq.ra;meta.main"
    assert table["id"].info.meta["ucd"] == "meta.id;meta.main"
    assert table["z"].info.meta["ucd"] == "src.redshift"
    assert table["snr_r"].info.meta["ucd"] == "stat.snr;em.opt.R"
    assert table["class"].info.meta["ucd"] == "src.class"
    assert table["best_distance"].unit == u.bit
    assert table["ra"].info.description == COLUMNS["ra"][1]
    assert table["extra"].unit == u.AA  # untouched unknown column


@pytest.mark.parametrize("suffix", [".ecsv", ".fits", ".vot"])
def test_round_trip_lossless(table: Table, tmp_path, suffix: str) -> None:
    path = write_catalogue(table, tmp_path / f"cat{suffix}")
    back = read_catalogue(path)
    assert back.colnames == table.colnames
    for name in table.colnames:
        assert back[name].unit == table[name].unit, name
        assert back[name].info.description == table[name].info.description, name
        assert (back[name].info.meta or {}).get("ucd") == (table[name].info.meta or {}).get("ucd")
        a, b = np.asarray(table[name]), np.asarray(back[name])
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)  # NaN == NaN here
        else:
            assert list(a) == list(b), name
    assert back.meta["model"] == {"n_bits": 256, "hidden": [512, 256]}
    assert back.meta["inputs"] == ["a.fits", "b.fits"]
    assert back.meta["created_utc"] == table.meta["created_utc"]
    assert back.meta["pyspec_version"] == table.meta["pyspec_version"]


def test_votable_has_ucds_for_topcat(table: Table, tmp_path) -> None:
    path = write_catalogue(table, tmp_path / "cat.vot")
    with open(path, "rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)  # VOUnit deprecates Angstrom
        vot = parse(fh)
    fields = {f.name: f for f in vot.get_first_table().fields}
    assert fields["ra"].ucd == "pos.eq.ra;meta.main" and str(fields["ra"].unit) == "deg"
    assert fields["dec"].ucd == "pos.eq.dec;meta.main"
    assert fields["z"].ucd == "src.redshift"
    assert fields["id"].ucd == "meta.id;meta.main"
    infos = {i.name: i.value for i in vot.get_first_table().infos}
    assert infos["command"] == "pyspec search"


def test_fits_readable_by_plain_astropy(table: Table, tmp_path) -> None:
    path = write_catalogue(table, tmp_path / "cat.fits")
    plain = Table.read(path, character_as_bytes=True)
    assert np.asarray(plain["id"])[2].decode("utf-8") == "ümlaut-7"
    assert plain["ra"].unit == u.deg and plain["best_distance"].unit == u.bit
    np.testing.assert_allclose(plain["ra"], table["ra"])


def test_csv_values(table: Table, tmp_path) -> None:
    path = write_catalogue(table, tmp_path / "cat.csv")
    back = read_catalogue(path)
    assert list(back["id"]) == list(table["id"])
    np.testing.assert_allclose(back["ra"], table["ra"])


def test_formats_and_errors(table: Table, tmp_path) -> None:
    assert catalogue_format("a.ECSV") == "ecsv"
    assert catalogue_format("a.fits.gz") == "fits"
    assert catalogue_format("a.xml") == "votable"
    assert catalogue_format("a.txt", "csv") == "csv"
    with pytest.raises(ValueError, match="suffix"):
        catalogue_format("a.txt")
    with pytest.raises(ValueError, match="unknown catalogue format"):
        catalogue_format("a.ecsv", "hdf5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_catalogue(table, tmp_path / "nope" / "a.ecsv")
    write_catalogue(table, tmp_path / "a.ecsv")
    with pytest.raises(FileExistsError):
        write_catalogue(table, tmp_path / "a.ecsv", overwrite=False)
    with pytest.raises(FileNotFoundError):
        read_catalogue(tmp_path / "missing.ecsv")
