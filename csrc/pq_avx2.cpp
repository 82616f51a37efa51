// ISA variant (to be implemented). Compiled with ISA flags; reached only via
// the dispatcher in pq.cpp after cpu_features confirms support.
#include "pq.hpp"
