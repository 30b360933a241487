"""The coded models on a CUDA GPU: the fused energy op, AMP, channels_last, torch.compile, DDP-free train steps.

Skipped without a GPU (CI has none); run them where one exists: `python -m pytest tests/test_cuda.py`.
"""
import pytest
import timm
import torch
import torch.nn.functional as F

import timm_coded
from timm_coded.layers.subnn_coding import SubNNCoding, _normalize_subnns_autograd

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


@pytest.fixture(autouse=True)
def exact_fp32():
    """Full fp32 matmuls (no TF32), so CUDA results can be compared with CPU / float64 references."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.mark.parametrize('channels_last', [False, True])
def test_fused_op_matches_float64_definition_on_cuda(channels_last):
    """SubNNCoding (hand-written backward) in fp32 on the GPU against its autograd definition in float64."""
    torch.manual_seed(0)
    b, n, d, c, hw = 8, 32, 16, 1024, 10
    h = torch.rand(b, n * d, hw, hw, device='cuda')
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    w = torch.randn(c, n * d, 1, 1, device='cuda') * 0.05
    keep = (torch.rand(b, n, device='cuda') > 0.1).float() / 0.9
    g_out, g_e = torch.randn(b, n * d, hw, hw, device='cuda'), torch.randn(b, n, device='cuda')

    def run(fn, h, w, keep):
        h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
        out, energy = fn(h, w, keep)
        torch.autograd.backward((out, energy), (g_out.to(out.dtype), g_e.to(energy.dtype)))
        return out, energy, h.grad, w.grad
    fused = run(lambda a, w_, k: SubNNCoding.apply(a, w_, k, n, 1e-6), h, w, keep)
    ref = run(lambda a, w_, k: _normalize_subnns_autograd(a, w_, n, 1e-6, k)[:2], h.double(), w.double(), keep.double())
    for got, want in zip(fused, ref):
        assert got.device.type == 'cuda'
        assert rel_err(got, want) < 1e-5


def test_cuda_model_matches_cpu_and_trains_in_bf16_channels_last():
    torch.manual_seed(0)
    model = timm.create_model('coded_resnext29_10x11d', num_classes=10).eval()
    x = torch.randn(4, 3, 32, 32)
    ref = model(x)
    ref_energy = model.coded_blocks()[-1].subnn_energies
    gpu = model.cuda()
    out = gpu(x.cuda())
    assert rel_err(out.cpu(), ref) < 1e-4
    assert rel_err(gpu.coded_blocks()[-1].subnn_energies.cpu(), ref_energy) < 1e-4

    gpu = gpu.train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(gpu.parameters(), lr=0.05, momentum=0.9)
    xb = torch.randn(32, 3, 32, 32, device='cuda').to(memory_format=torch.channels_last)
    yb = torch.randint(10, (32,), device='cuda')
    losses = []
    for _ in range(8):
        with torch.autocast('cuda', dtype=torch.bfloat16):
            out = gpu(xb)
            energies = [blk.subnn_energies for blk in gpu.coded_blocks()]
            loss = F.cross_entropy(out, yb) + 2. * timm_coded.coding_loss(gpu, yb)
        assert out.dtype == torch.bfloat16 and all(e.dtype == torch.float32 for e in energies)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in gpu.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_torch_compile_train_step_on_cuda_matches_eager():
    torch.manual_seed(0)
    eager = timm.create_model('coded_resnext11_10x4d', num_classes=10, drop_subnn_rate=0.).cuda().train()
    compiled_model = timm.create_model('coded_resnext11_10x4d', num_classes=10, drop_subnn_rate=0.).cuda().train()
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model)
    x, y = torch.randn(16, 3, 32, 32, device='cuda'), torch.randint(10, (16,), device='cuda')
    grads = []
    for model, fn in ((eager, eager), (compiled_model, compiled)):
        loss = F.cross_entropy(fn(x), y) + 2. * timm_coded.coding_loss(model, y)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    assert rel_err(grads[1][0], grads[0][0]) < 1e-4
    for g1, g0 in zip(grads[1][1], grads[0][1]):
        assert rel_err(g1, g0) < 1e-3


def test_grad_checkpointing_on_cuda_same_grads():
    torch.manual_seed(0)
    model = timm.create_model('coded_resnext11_10x4d', num_classes=10).cuda().train()
    x, y = torch.randn(8, 3, 32, 32, device='cuda'), torch.randint(10, (8,), device='cuda')
    results = []
    for ckpt in (False, True):
        model.set_grad_checkpointing(ckpt)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same dropSubNNs masks in both runs
        loss = F.cross_entropy(model(x), y) + 2. * timm_coded.coding_loss(model, y)
        loss.backward()
        results.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*results):
        assert rel_err(a, b) < 1e-5


def test_train_step_makes_no_host_sync_on_cuda():
    """Forward, coding loss (with its class-index check) and backward never wait for the GPU."""
    model = timm.create_model('coded_resnext11_10x4d', num_classes=10).cuda().train()
    x, y = torch.randn(8, 3, 32, 32, device='cuda'), torch.randint(10, (8,), device='cuda')
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        loss = F.cross_entropy(model(x), y) + 2. * timm_coded.coding_loss(model, y)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert torch.isfinite(loss).item()


def test_out_of_range_target_fails_with_its_message_on_cuda():
    """A bad class index becomes a device-side assertion carrying our message; it surfaces at the next CUDA
    call that notices the error (checked in a child process: it poisons the CUDA context)."""
    import subprocess
    import sys
    code = '''
import timm, torch, timm_coded
model = timm.create_model('coded_resnext11_10x4d', num_classes=10).cuda()
model(torch.randn(2, 3, 32, 32, device='cuda'))
try:
    timm_coded.coding_loss(model, torch.tensor([0, 12], device='cuda'))
    torch.cuda.synchronize()
except Exception as e:  # torch.AcceleratorError in recent torch
    print('raised', type(e).__name__, flush=True)
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert 'raised' in out.stdout, out.stdout + out.stderr
    assert 'Class index out of range: the codebook has 10 classes' in out.stdout + out.stderr
