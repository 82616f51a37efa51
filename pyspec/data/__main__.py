"""``python -m pyspec.data``: print the folder of the shipped sample (for shell recipes)."""

from pyspec.data import SAMPLE_DIR

print(SAMPLE_DIR)
