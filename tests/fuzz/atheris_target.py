"""Coverage-guided fuzz target for pyspec's loaders (atheris), for long runs outside CI.

    pip install atheris
    python tests/fuzz/atheris_target.py [libFuzzer options, e.g. -max_total_time=3600]

Each input is split into a one-byte selector (which artefact kind and file to
replace) and the file's new bytes; the artefact is then loaded completely by
the same loaders as :mod:`harness`. A typed ``PyspecError`` is the expected
failure; anything else (another exception, a crash, a hang) is a finding.
Without atheris installed the script runs the same target on random
mutations of the pristine files (``--runs N``), a slower equivalent.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from harness import LOADERS, _replace, build_artefacts, corrupt, files_of  # noqa: E402

from pyspec.errors import PyspecError  # noqa: E402

_ROOT = Path(tempfile.mkdtemp(prefix="pyspec-atheris-"))
_ARTEFACTS = build_artefacts(_ROOT)
_TARGETS = [(name, f) for name, p in sorted(_ARTEFACTS.items()) for f in files_of(p)]
_PRISTINE = {f: f.read_bytes() for _, f in _TARGETS}


def test_one_input(data: bytes) -> None:
    if not data:
        return
    name, path = _TARGETS[data[0] % len(_TARGETS)]
    _replace(path, data[1:])  # a new inode: maps held by earlier loads stay valid
    try:
        LOADERS[name](_ARTEFACTS[name])
    except PyspecError:
        pass
    finally:
        _replace(path, _PRISTINE[path])


def main() -> None:
    try:
        import atheris
    except ImportError:
        runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 1000
        rng = np.random.default_rng(0)
        for _ in range(runs):
            i = int(rng.integers(len(_TARGETS)))
            _, damaged = corrupt(_PRISTINE[_TARGETS[i][1]], _TARGETS[i][1].name, rng)
            test_one_input(bytes([i]) + damaged)
        print(f"{runs} mutated inputs, no untyped exception")
        return
    seeds = [bytes([i]) + _PRISTINE[f] for i, (_, f) in enumerate(_TARGETS)]
    corpus = _ROOT / "corpus"
    corpus.mkdir()
    for i, s in enumerate(seeds):
        (corpus / f"seed{i:03d}").write_bytes(s)
    atheris.Setup([sys.argv[0], str(corpus), *sys.argv[1:]], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
