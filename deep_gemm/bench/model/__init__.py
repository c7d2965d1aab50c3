"""A time model of our kernels from their SASS (see predict.py)."""
