"""Real data: the session's Fashion-MNIST training (tests/conftest.py) with the coding loss through the task."""
import numpy as np
import pytest
import torch

import timm_coded


@pytest.mark.slow
def test_coding_loss_falls_and_early_decoders_learn(trained):
    model = trained.coded_model.eval()
    x_test, y_test = trained.test
    with torch.no_grad():
        scores = timm_coded.early_decode(model, x_test)
        final_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    decoder_acc = [(s.argmax(1) == y_test).float().mean().item() for s in scores]
    first, last = np.mean(trained.coding_losses[:30]), np.mean(trained.coding_losses[-30:])
    print(f'coding loss {first:.4f} -> {last:.4f}; early decoders {trained.decoders_before} -> {decoder_acc}; '
          f'final {final_acc:.3f}')
    assert last < 0.8 * first
    for acc0, acc in zip(trained.decoders_before, decoder_acc):  # chance is 0.1
        assert acc > 0.35 and acc > acc0 + 0.2
    assert final_acc > 0.35
