#include "pq.hpp"
