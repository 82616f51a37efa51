// hamming kernel family (to be implemented).
#pragma once
