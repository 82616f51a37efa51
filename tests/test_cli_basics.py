"""CLI framework: help, version, user errors as one line with exit code 1."""

from __future__ import annotations

import pytest

from pyspec.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "pyspec" in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    assert "SIMD selected" in capsys.readouterr().out


def test_user_error_is_one_line(capsys, tmp_path):
    assert main(["info", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pyspec info: error:") and "\n" not in err
