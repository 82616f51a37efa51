#include "hamming.hpp"
