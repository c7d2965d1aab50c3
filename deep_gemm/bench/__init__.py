"""`python -m deep_gemm.bench`: every kernel timed beside this GPU's measured ceilings (see `__main__.py`)."""
