"""Benchmark and numerical test helpers of `deep_gemm`."""
from . import bench as _bench_mod, numeric, utils
from .bench import *  # noqa: F401,F403  (the function `bench` shadows the submodule name, as upstream)
from .numeric import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403

__all__ = _bench_mod.__all__ + numeric.__all__ + utils.__all__
