"""Fine-tuning path: timm's plain ResNeXt-50 weights into a Coded ResNeXt-50 with a new head."""
import timm
import torch

import timm_coded  # noqa: F401  (registers the models)


def test_pretrained_overlay_file_from_timm_resnext50(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model('resnext50_32x4d')
    path = tmp_path / 'resnext50_32x4d.pth'
    torch.save(ref.state_dict(), path)
    model = timm.create_model('coded_resnext50_32x4d', pretrained=True, num_classes=37,
                              pretrained_cfg_overlay=dict(file=str(path), num_classes=1000))
    assert model.fc.out_features == 37 and model.codebooks.get('r8_32').shape == (37, 32)
    torch.testing.assert_close(model.layer4[2].conv3.weight, ref.layer4[2].conv3.weight)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 37) and torch.isfinite(out).all()
