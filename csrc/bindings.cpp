// pyspec._core: private compiled module. Users import from `pyspec`.
#include "bindings.hpp"

#include <string>

#include "cpu_features.hpp"
#include "parallel.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyspec private kernels; use the pyspec package API instead.";
  m.attr("__version__") = PYSPEC_VERSION;
  m.attr("compiler") = PYSPEC_COMPILER;
  m.attr("openmp") = pyspec::openmp_enabled();

  m.def("max_threads", [] { return pyspec::resolve_threads(0); },
        "Threads a kernel uses with num_threads=0 (OpenMP default).");
  m.def("compiled_simd_level",
        [] { return std::string(pyspec::simd_level_name(pyspec::compiled_simd_level())); });
  m.def("detected_simd_level",
        [] { return std::string(pyspec::simd_level_name(pyspec::detected_simd_level())); });
  m.def("selected_simd_level",
        [] { return std::string(pyspec::simd_level_name(pyspec::selected_simd_level())); });
  m.def("hamming_simd_level",
        [] { return std::string(pyspec::simd_level_name(pyspec::hamming_simd_level())); },
        "Level of the Hamming kernels (AVX-512 needs VPOPCNTDQ; else AVX2).");
  m.def("set_simd_level",
        [](const std::string& name) { pyspec::set_simd_level(pyspec::parse_simd_level(name)); },
        py::arg("level"), "Force the dispatch level (tests); see pyspec.simd_level().");

  // Bad environment settings (PYSPEC_SIMD, PYSPEC_PQ_SCAN) surface as the
  // package's typed error; imported lazily, on the first such error.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pyspec::ConfigError& e) {
      py::object cls = py::module_::import("pyspec.errors").attr("ConfigurationError");
      PyErr_SetString(cls.ptr(), e.what());
    }
  });

  pyspec::bind_hamming(m);
  pyspec::bind_pq(m);
  pyspec::bind_fastscan(m);
  pyspec::bind_linalg(m);
  pyspec::bind_ivf(m);
  pyspec::bind_ivfpq(m);
}
