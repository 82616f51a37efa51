"""The root conftest.py: docstring examples run, optional dependencies skip, tests/ is left out."""

from __future__ import annotations

from pathlib import Path

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def test_missing_optional_package_skips_with_reason_other_errors_fail(pytester) -> None:
    # the repository's conftest, with one more (absent) optional package
    pytester.makeconftest(ROOT_CONFTEST.read_text()
                          + '\nOPTIONAL_PACKAGES = OPTIONAL_PACKAGES | {"absent_extra"}\n')
    pkg = pytester.mkpydir("pkg")
    (pkg / "good.py").write_text('"""\n>>> 0.1 + 0.2\n0.3\n"""\n')
    (pkg / "optional.py").write_text('"""\n>>> 1\n1\n"""\nimport absent_extra\n')
    (pkg / "broken.py").write_text('"""\n>>> 1\n1\n"""\nimport absent_required\n')
    tests = pytester.mkdir("tests")
    (tests / "helpers.py").write_text('"""\n>>> 1\n2\n"""\n')  # would fail if it ran
    result = pytester.runpytest("--doctest-modules", "--continue-on-collection-errors", "-ra",
                                "-o", "doctest_optionflags=NUMBER",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines([
        "*docstring examples of pkg*optional.py not run: optional package 'absent_extra' "
        "is not installed*",
        "*ERROR*pkg/broken.py*"])
