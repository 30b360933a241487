"""Real data: a few hundred steps on Fashion-MNIST with the coding loss from a hand-written loop."""
import numpy as np
import torch
import torch.nn.functional as F

import timm_coded
from timm_coded.coded_resnext import CodedResNeXt
from timm_coded.data import FashionMNIST, balanced_indices

from helpers.data import needs_fashion_mnist


def as_tensors(ds: FashionMNIST):
    x = torch.from_numpy(ds.images).float().div(255.).sub(0.286).div(0.353).unsqueeze(1)
    return x, torch.from_numpy(ds.targets)


@needs_fashion_mnist
def test_coding_loss_falls_and_early_decoders_learn():
    torch.manual_seed(0)
    train = FashionMNIST(split='train', in_chans=1)
    train = FashionMNIST(split='train', in_chans=1, indices=balanced_indices(train.targets, 400))
    test = FashionMNIST(split='test', in_chans=1)
    test = FashionMNIST(split='test', in_chans=1, indices=balanced_indices(test.targets, 50))
    x_train, y_train = as_tensors(train)
    x_test, y_test = as_tensors(test)
    model = CodedResNeXt(layers=(1, 1, 1), channels=(16, 32, 64), cardinality=10, base_width=16, in_chans=1,
                         stem_type='cifar', coding_ratios=('10/10', '5/10', '3/10'), num_classes=10)
    model.eval()
    with torch.no_grad():
        before = [(s.argmax(1) == y_test).float().mean().item() for s in timm_coded.early_decode(model, x_test)]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    mu, steps, bs = 6., 300, 32
    code_losses = []
    gen = torch.Generator().manual_seed(0)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(y_train), (bs,), generator=gen)
        x, y = x_train[idx], y_train[idx]
        out = model(x)
        code = timm_coded.coding_loss(model, y)
        loss = F.cross_entropy(out, y) + mu * code
        opt.zero_grad()
        loss.backward()
        opt.step()
        code_losses.append(code.item())

    model.eval()
    with torch.no_grad():
        scores = timm_coded.early_decode(model, x_test)
        logits = model(x_test)
    decoder_acc = [(s.argmax(1) == y_test).float().mean().item() for s in scores]
    final_acc = (logits.argmax(1) == y_test).float().mean().item()
    first, last = np.mean(code_losses[:30]), np.mean(code_losses[-30:])
    print(f'coding loss {first:.4f} -> {last:.4f}; early decoders {before} -> {decoder_acc}; final {final_acc:.3f}')
    assert last < 0.8 * first
    for acc0, acc in zip(before, decoder_acc):  # chance is 0.1
        assert acc > 0.35 and acc > acc0 + 0.2
    assert final_acc > 0.35
