"""One DeepSeek-V4-shaped paged indexer call, for `ncu` to count its DRAM bytes (issue: within 1.05x of ideal).

    ncu --clock-control none --metrics dram__bytes_read.sum,dram__bytes_write.sum \
        -k regex:sm120_fp8_paged_mqa_logits python3 benchmarks/ncu_paged.py

Ideal bytes read = every needed page's keys and scales once: sum over requests of ceil(len / 64) * 64 * 132,
plus q, weights, block table and context lengths (printed below for comparison).
"""
import torch

import deep_gemm

B, CTX, H, D, BLOCK = 64, 65536, 64, 128, 64
torch.manual_seed(0)
pages_per_req = CTX // BLOCK
num_pages = B * pages_per_req
cache = torch.randint(0, 256, (num_pages, BLOCK, 1, D + 4), dtype=torch.uint8, device='cuda')
# Scales: positive finite floats
cache.view(num_pages, -1)[:, BLOCK * D:].view(torch.float32).uniform_(0.5, 2)
cache.view(num_pages, -1)[:, :BLOCK * D].view(torch.float8_e4m3fn).copy_(
    torch.randn(num_pages, BLOCK * D, device='cuda').to(torch.float8_e4m3fn))
block_table = torch.randperm(num_pages, device='cuda', dtype=torch.int32).view(B, pages_per_req)
q = torch.randn(B, 1, H, D, device='cuda').to(torch.float8_e4m3fn)
weights = torch.randn(B, H, device='cuda')
lens = torch.full((B, 1), CTX, dtype=torch.int32, device='cuda')
meta = deep_gemm.get_paged_mqa_logits_metadata(lens, BLOCK, deep_gemm.get_num_sms())
for _ in range(2):
    out = deep_gemm.fp8_paged_mqa_logits(q, cache, weights, lens, block_table, meta, CTX, False)
torch.cuda.synchronize()
ideal = B * pages_per_req * BLOCK * (D + 4) + q.numel() + weights.numel() * 4 + block_table.numel() * 4 + B * 4
print(f'ideal DRAM bytes read per call: {ideal} ({ideal / 2**20:.1f} MiB); logits written: {B * CTX * 4} B')
