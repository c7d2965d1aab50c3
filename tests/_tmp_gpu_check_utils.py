import torch
from deep_gemm import utils as dgu, testing as dgt
torch.manual_seed(0)
x = torch.randn(300, 520) * 5
for f in (dgu.per_token_cast_to_fp8, dgu.per_channel_cast_to_fp8, dgu.per_block_cast_to_fp8):
    for ue in (False, True):
        a = f(x, ue); b = f(x.cuda(), ue)
        for u, v in zip(a, b): dgt.assert_bitwise_equal(u, v.cpu(), f.__name__)
for ue, pk in ((False, False), (True, False), (True, True)):
    a = dgu.per_token_cast_to_fp4(x[:, :512], ue, 32, pk); b = dgu.per_token_cast_to_fp4(x[:, :512].cuda(), ue, 32, pk)
    for u, v in zip(a, b): dgt.assert_bitwise_equal(u, v.cpu(), 'fp4')
    dgt.assert_bitwise_equal(dgu.cast_back_from_fp4(*a, 32, pk), dgu.cast_back_from_fp4(*b, 32, pk).cpu(), 'back')
    dgt.assert_bitwise_equal(dgu.transpose_packed_fp4(a[0]), dgu.transpose_packed_fp4(b[0]).cpu(), 'tr')
sf = torch.randn(3, 4).cuda()
print(dgu.transform_sf_into_required_layout(sf, 300, 512, (1, 128), is_sfa=True).stride())
print(dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(dgu.ceil_to_ue8m0(sf.abs() + 0.1)).stride())
a = torch.randn(4096, 4096, device='cuda', dtype=torch.bfloat16)
t1 = dgt.bench(lambda: a @ a); t2 = dgt.bench(lambda: a @ a, high_precision=True)
print('bench', t1, t2)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
    a @ a; torch.cuda.synchronize()
kn = [e.name for e in p.events() if e.device_type == torch.autograd.DeviceType.CUDA]
print('kernels', kn)
sub = kn[0][:12]
print('kineto', dgt.bench_kineto(lambda: a @ a, sub, suppress_kineto_output=True, trace_path='/tmp/t.json'))
print('kineto tuple', dgt.bench_kineto(lambda: (a @ a, a + a), (sub, 'elementwise'), with_multiple_kernels=True), 'elementwise only', dgt.bench_kineto(lambda: a + a, 'elementwise'), 'noflush', dgt.bench_kineto(lambda: a + a, 'elementwise', flush_l2=False))
try:
    dgt.bench_kineto(lambda: (a @ a, a @ a), sub)
except RuntimeError as e: print('expected error:', str(e)[:200])
try:
    dgt.bench_kineto(lambda: a @ a, 'no_such_kernel')
except RuntimeError as e: print('expected error:', str(e)[:200])
print('arch', dgt.get_arch_major(), 'calc_diff', dgt.calc_diff(a, a * 1.001))
print('ALL OK')
