"""Pure-Python helpers of `deep_gemm`: integer math, reference quantizers, scale layouts, distributed setup."""
from . import dist, layout, math
from .layout import *  # noqa: F401,F403
from .math import *  # noqa: F401,F403

__all__ = ['dist', 'layout', 'math'] + math.__all__ + layout.__all__
