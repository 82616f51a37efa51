"""Every code block of README.md runs verbatim, in order, in one temporary folder.

Python blocks run in a fresh interpreter each, shell blocks in ``bash -e``;
``pyspec`` and ``python`` resolve to this interpreter.  A block preceded by
``<!-- not-run: REASON -->`` is skipped, and must give its reason (a cluster,
the shared corpus, an installation).  ``csv`` blocks are data, not code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
_NOT_RUN = re.compile(r"<!-- not-run: (.+?) -->\s*$")
_RUNNABLE = {"python", "bash"}
_DATA = {"csv"}


def readme_blocks() -> list[tuple[str, str, str | None, int]]:
    """(language, code, not-run reason or None, line) of every fenced block."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = _NOT_RUN.search(before)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((match.group(1), match.group(2), reason.group(1) if reason else None,
                       line))
    return blocks


def test_every_block_is_runnable_or_says_why_not() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 8
    for lang, _, reason, line in blocks:
        assert lang in _RUNNABLE | _DATA, f"README line {line}: block language {lang!r}"
        if reason is not None:
            assert lang in _RUNNABLE, f"README line {line}"
            assert re.search(r"cluster|shared corpus|install", reason), (line, reason)
    assert sum(reason is None and lang in _RUNNABLE for lang, _, reason, _ in blocks) >= 6


@pytest.mark.slow
def test_readme_blocks_run_verbatim(tmp_path) -> None:
    bin_dir = tmp_path / "bin"  # `pyspec` and `python`: this interpreter, this checkout
    bin_dir.mkdir()
    for name, target in (("pyspec", f'"{sys.executable}" -m pyspec.cli "$@"'),
                         ("python", f'"{sys.executable}" "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\nexec {target}\n")
        (bin_dir / name).chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "MPLBACKEND": "Agg"}
    for lang, code, reason, line in readme_blocks():
        if reason is not None or lang not in _RUNNABLE:
            continue
        argv = [sys.executable, "-c", code] if lang == "python" else ["bash", "-e", "-c", code]
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, (f"README line {line} ({lang}) failed:\n{code}\n"
                                      f"--- stdout\n{done.stdout[-3000:]}\n"
                                      f"--- stderr\n{done.stderr[-3000:]}")
    for made in ("sample-engine", "top10.png", "candidates.vot", "lines.fits", "matched.ecsv",
                 "emission.ecsv", "pr.png", "spread.ecsv", "al/batch-001.csv"):
        assert (work / made).exists(), made
