#include "linalg.hpp"
