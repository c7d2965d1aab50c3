"""Multi-process helpers for tests (torch.distributed is imported lazily)."""
import os

import torch

__all__ = ['init_dist', 'uneven_all_gather', 'dist_print']


def init_dist(local_rank: int, num_local_ranks: int):
    """Initialise NCCL like upstream's tests and return `(rank, world_size, group)`.

    Env: `MASTER_ADDR` (default 127.0.0.1), `MASTER_PORT` (default 8361), `WORLD_SIZE` = number of nodes
    (default 1), `RANK` = this node's index (default 0). Global rank = node_rank * num_local_ranks + local_rank.
    Sets the current CUDA device to `local_rank`.
    """
    import torch.distributed as dist
    for name, v in (('local_rank', local_rank), ('num_local_ranks', num_local_ranks)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f'init_dist: `{name}` must be an int, got {type(v).__name__}')
    if num_local_ranks <= 0 or not 0 <= local_rank < num_local_ranks:
        raise ValueError(f'init_dist: need 0 <= local_rank < num_local_ranks, '
                         f'got local_rank={local_rank}, num_local_ranks={num_local_ranks}')
    ip = os.getenv('MASTER_ADDR', '127.0.0.1')
    port = int(os.getenv('MASTER_PORT', '8361'))
    num_nodes = int(os.getenv('WORLD_SIZE', '1'))
    node_rank = int(os.getenv('RANK', '0'))
    world_size, rank = num_nodes * num_local_ranks, node_rank * num_local_ranks + local_rank
    torch.cuda.set_device(local_rank)
    dist.init_process_group(backend='nccl', init_method=f'tcp://{ip}:{port}', world_size=world_size, rank=rank,
                            device_id=torch.device('cuda', local_rank))
    return dist.get_rank(), dist.get_world_size(), dist.new_group(list(range(world_size)))


def uneven_all_gather(tensor: torch.Tensor, dim: int = 0, group=None) -> torch.Tensor:
    """All-gather tensors whose size along `dim` differs per rank; returns them concatenated in rank order."""
    import torch.distributed as dist
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f'uneven_all_gather: `tensor` must be a torch.Tensor, got {type(tensor).__name__}')
    if not isinstance(dim, int) or not -tensor.dim() <= dim < tensor.dim():
        raise ValueError(f'uneven_all_gather: `dim` must be in [-{tensor.dim()}, {tensor.dim()}), got {dim!r}')
    dim %= tensor.dim()
    world_size = dist.get_world_size(group)
    size = torch.tensor([tensor.shape[dim]], dtype=torch.int64, device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s.item()) for s in sizes]
    pad_shape = list(tensor.shape)
    pad_shape[dim] = max(sizes) - tensor.shape[dim]
    padded = torch.cat([tensor, tensor.new_zeros(pad_shape)], dim=dim).contiguous()
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded, group=group)
    return torch.cat([g.narrow(dim, 0, s) for g, s in zip(gathered, sizes)], dim=dim)


def dist_print(*args, once_in_node: bool = False, **kwargs):
    """`print` from a distributed job: every rank, or with `once_in_node` only the first rank of each node (local rank
    0, i.e. LOCAL_RANK or the rank modulo the GPUs per node). Flushes, so ranks' lines do not interleave mid-line."""
    import torch.distributed as dist
    if once_in_node and dist.is_available() and dist.is_initialized():
        local = os.getenv('LOCAL_RANK')
        per_node = max(torch.cuda.device_count(), 1)
        if (int(local) if local is not None else dist.get_rank() % per_node) != 0:
            return
    print(*args, **kwargs, flush=True)
