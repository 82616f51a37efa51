"""tests/doctest_collection.py: examples run, optional dependencies skip, tests/ is left out."""

from __future__ import annotations

from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "doctest_collection.py"

CONFTEST = '''
import doctest_collection


def pytest_configure(config):
    config.pluginmanager.register(doctest_collection, "pyspec-doctest-collection")
'''


def test_missing_optional_package_skips_with_reason_other_errors_fail(pytester) -> None:
    tests = pytester.mkdir("tests")
    # the plugin for a stand-in package, with one more (absent) optional package
    plugin = PLUGIN.read_text().replace('PACKAGE = REPO / "pyspec"', 'PACKAGE = REPO / "stand_in"')
    assert "stand_in" in plugin
    (tests / "doctest_collection.py").write_text(
        plugin + '\nOPTIONAL_PACKAGES = OPTIONAL_PACKAGES | {"absent_extra"}\n')
    (tests / "conftest.py").write_text(CONFTEST)
    (tests / "helpers.py").write_text('"""\n>>> 1\n2\n"""\n')  # would fail if it ran
    pkg = pytester.mkpydir("stand_in")  # importable: the subprocess runs in this directory
    (pkg / "good.py").write_text('"""\n>>> 0.1 + 0.2\n0.3\n"""\n')
    (pkg / "optional.py").write_text('"""\n>>> 1\n1\n"""\nimport absent_extra\n')
    (pkg / "broken.py").write_text('"""\n>>> 1\n1\n"""\nimport absent_required\n')
    result = pytester.runpytest_subprocess(
        "--doctest-modules", "--continue-on-collection-errors", "-ra", "-p", "no:cacheprovider",
        "-o", "doctest_optionflags=NUMBER", "tests", "stand_in")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines([
        "*docstring examples of stand_in.optional not run: optional package 'absent_extra' "
        "is not installed*",
        "*ERROR*stand_in/broken.py*"])
