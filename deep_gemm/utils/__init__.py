"""Pure-Python helpers of `deep_gemm`: integer math, reference quantizers, scale layouts, distributed setup."""
from . import dist, layout, math
from .layout import *  # noqa: F401,F403
from .math import *  # noqa: F401,F403

__all__ = ['dist', 'layout', 'math'] + math.__all__ + layout.__all__
from . import fp4_cache  # noqa: E402
from .fp4_cache import *  # noqa: F401,F403,E402
__all__ += ['fp4_cache'] + fp4_cache.__all__
