"""Numerical comparison helpers."""
import torch

__all__ = ['calc_diff', 'count_bytes', 'assert_bitwise_equal']


def calc_diff(x: torch.Tensor, y: torch.Tensor) -> float:
    """`1 - 2 * sum(x*y) / sum(x^2 + y^2)` in float64: 0 for equal tensors, 2 for `y = -x`, 0 when both are zero.

    Plain math otherwise: a NaN or inf in either input yields NaN.
    """
    for name, t in (('x', x), ('y', y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f'calc_diff: `{name}` must be a torch.Tensor, got {type(t).__name__}')
    if x.shape != y.shape:
        raise ValueError(f'calc_diff: `x` and `y` must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}')
    x, y = x.double(), y.double()
    denominator = (x * x + y * y).sum()
    if denominator.item() == 0:
        return 0.0
    return (1 - 2 * (x * y).sum() / denominator).item()


def count_bytes(*tensors) -> int:
    """Total `numel * element_size` of the given tensors; recurses into tuples/lists and ignores None."""
    total = 0
    for t in tensors:
        if t is None:
            continue
        if isinstance(t, (tuple, list)):
            total += count_bytes(*t)
        elif isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
        else:
            raise TypeError(f'count_bytes: arguments must be tensors, tuples/lists or None, got {type(t).__name__}')
    return total


def assert_bitwise_equal(x: torch.Tensor, y: torch.Tensor, label: str = '') -> None:
    """Assert same shape, dtype and bytes (so equal NaN bit patterns pass and -0.0 != 0.0)."""
    for name, t in (('x', x), ('y', y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f'assert_bitwise_equal: `{name}` must be a torch.Tensor, got {type(t).__name__}')
    tag = f'[{label}] ' if label else ''
    if x.shape != y.shape or x.dtype != y.dtype:
        raise AssertionError(f'{tag}mismatch: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}')
    if x.numel() == 0:
        return
    esize = x.element_size()
    xb = x.detach().contiguous().reshape(-1).view(torch.uint8).view(-1, esize)
    yb = y.detach().contiguous().reshape(-1).view(torch.uint8).view(-1, esize).to(xb.device)
    diff = (xb != yb).any(dim=1)
    if diff.any():
        flat = int(diff.nonzero()[0, 0].item())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(x.shape))) if x.dim() else ()
        raise AssertionError(f'{tag}bitwise mismatch at index {index} ({int(diff.sum().item())} of {x.numel()} '
                             f'elements differ): {x.reshape(-1)[flat].item()!r} vs {y.reshape(-1)[flat].item()!r}')
