"""The tiny Coded ResNeXt the tests build, with non-trivial BatchNorm."""
import torch

TINY_ARGS = dict(layers=(1, 1, 1), channels=(16, 32, 64), cardinality=10, base_width=16, stem_type='cifar',
                 coding_ratios=('10/10', '5/10', '3/10'), num_classes=10)


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and affine parameters (a fresh model's BN is the identity in eval), eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


def make_tiny(seed: int = 0, **kwargs):
    """A tiny Coded ResNeXt (3 stages of one block, N = 10 subNNs, ratios 10/10, 5/10, 3/10, the CIFAR-10 codebooks),
    with non-trivial BN; kwargs override the CodedResNeXt arguments."""
    from timm_coded import CodedResNeXt
    torch.manual_seed(seed)
    return randomise_bn(CodedResNeXt(**dict(TINY_ARGS, **kwargs)), seed)
