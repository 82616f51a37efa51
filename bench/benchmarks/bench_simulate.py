"""asv: cost of the spectrum simulator per chunk, and of writing its output."""

from __future__ import annotations

import os
import shutil
import tempfile

from .common import simulation_grid, simulation_templates

_ALL = os.cpu_count() or 1
_THREADS = sorted({1, _ALL})


class SimulateChunk:
    """Generate one chunk of spectra (parameters, rendering, noise, masks, labels)."""

    params = ([1024, 8192], [2500], _THREADS)
    param_names = ["chunk_size", "n_pixels", "num_threads"]
    timeout = 300

    def setup(self, chunk_size, n_pixels, num_threads):
        from pyspec.simulate import Simulator

        self.sim = Simulator(grid=simulation_grid(n_pixels), seed=0,
                             templates=simulation_templates(), num_threads=num_threads)
        self.sim.generate(0, 8)  # compile (or load) the numba kernels outside the timing
        self.start = 10 * 1024  # fresh parameter blocks: nothing cached from setup

    def time_generate(self, chunk_size, n_pixels, num_threads):
        self.sim.generate(self.start, self.start + chunk_size)

    def peakmem_generate(self, chunk_size, n_pixels, num_threads):
        self.sim.generate(self.start, self.start + chunk_size)

    def peakmem_reference(self, chunk_size, n_pixels, num_threads):
        pass


class SimulateStore:
    """Simulate straight into a SpectrumStore (memory must not grow with n)."""

    params = ([4096, 32768],)
    param_names = ["n_spectra"]
    timeout = 600

    def setup(self, n_spectra):
        from pyspec.preprocess import WavelengthGrid
        self.grid = WavelengthGrid.preset("pq-2A")
        self.tmp = tempfile.mkdtemp(prefix="pyspec-bench-sim-")
        self.count = 0
        simulation_templates()

    def teardown(self, n_spectra):
        # asv calls teardown even when setup failed part-way
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _write(self, n_spectra):
        from pyspec.simulate import write_store

        # one store on disk at a time: asv repeats the call many times
        shutil.rmtree(os.path.join(self.tmp, f"s{self.count}"), ignore_errors=True)
        self.count += 1
        write_store(os.path.join(self.tmp, f"s{self.count}"), n_spectra, seed=0, grid=self.grid,
                    chunk_size=4096, templates=simulation_templates())

    def time_write_store(self, n_spectra):
        self._write(n_spectra)

    def peakmem_write_store(self, n_spectra):
        self._write(n_spectra)

    def peakmem_reference(self, n_spectra):
        pass


class SimulateFits:
    """Simulated LAMOST FITS files (layouts C and D) for the ingestion benchmarks."""

    params = ([64],)
    param_names = ["n_files"]

    def setup(self, n_files):
        self.tmp = tempfile.mkdtemp(prefix="pyspec-bench-fits-")
        self.count = 0
        simulation_templates()

    def teardown(self, n_files):
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def time_write_fits(self, n_files):
        from pyspec.simulate import write_fits

        shutil.rmtree(os.path.join(self.tmp, f"f{self.count}"), ignore_errors=True)
        self.count += 1
        write_fits(os.path.join(self.tmp, f"f{self.count}"), n_files, seed=0,
                   templates=simulation_templates())
