// ISA variant (to be implemented). Compiled with ISA flags; reached only via
// the dispatcher in hamming.cpp after cpu_features confirms support.
#include "hamming.hpp"
