"""Models that turn spectra into codes: PIL, LSH, ITQ hashers and the product quantiser."""
