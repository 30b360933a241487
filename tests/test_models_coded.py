"""Coded ResNeXt models: the paper's block against an explicit per-subNN reference, and timm behaviour."""
import math

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

import timm_coded
from timm_coded import CodedBottleneck, subnn_coding_reference
from timm_coded.layers import subnn_outputs

from helpers.models import make_tiny

MODELS = ['coded_resnext29_10x11d', 'coded_resnext29_20x6d', 'coded_resnext50_32x4d', 'coded_resnext23_10x4d',
          'coded_resnext11_10x4d', 'resnext29_10x11d', 'resnext29_20x6d', 'resnext23_10x4d', 'resnext11_10x4d']
SIX = dict(layers=(1, 2, 2), channels=(8, 16, 32), cardinality=6, base_width=16, coding_ratios=('6/6', '3/6', '3/6'),
           num_classes=6, drop_subnn_rate=0.25)  # N = 6 subNNs of width 2, two blocks in the coded stages


def tiny(**kwargs):
    return make_tiny(**dict(SIX, **kwargs)).train()


# --- the paper's block with N separate subNN outputs t_n ------------------------------------------------------
def reference_block(block: CodedBottleneck, x: torch.Tensor, mask: torch.Tensor):
    """Fig. 1(b) literally, through `subnn_coding_reference` (Eq. 2-3 and the drop on materialised t_n)."""
    h = block.act2(block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x))))))
    t = subnn_outputs(h, block.conv3.weight, block.num_subnns)
    out, energies = subnn_coding_reference(t, mask, block.energy_eps)
    shortcut = block.downsample(x) if block.downsample is not None else x
    return F.relu(block.bn3(out) + shortcut), energies


@pytest.mark.parametrize('training', [False, True])
def test_block_matches_explicit_subnn_reference(training):
    torch.manual_seed(0)
    model = tiny()
    model.train(training)
    block = model.layer2[0]  # coded, with a strided downsample
    assert isinstance(block, CodedBottleneck)
    x = torch.randn(4, 32, 8, 8, requires_grad=True)

    out = block(x)
    energies = block.subnn_energies
    mask = block.subnn_drop.mask if training else torch.ones(4, block.num_subnns)
    if training:
        assert mask is not None and mask.shape == (4, block.num_subnns)
        assert set(mask.unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}
    grads = torch.autograd.grad((out.square().sum() + energies.pow(3).sum()), [x] + list(block.parameters()))

    ref_out, ref_energies = reference_block(block, x, mask)
    ref_grads = torch.autograd.grad((ref_out.square().sum() + ref_energies.pow(3).sum()),
                                    [x] + list(block.parameters()))
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(energies, ref_energies, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(energies.sum(1), torch.full((4,), float(block.num_subnns)), rtol=1e-4, atol=1e-4)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-3, atol=1e-4)


def test_zero_input_gives_no_nan():
    model = tiny(num_classes=6).eval()
    block = model.layer3[1]
    block.conv1.weight.data.zero_()
    for bn in (block.bn1, block.bn2):
        bn.bias.data.zero_()
        bn.running_mean.zero_()
    x = torch.zeros(2, 128, 4, 4, requires_grad=True)
    out = block(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert torch.equal(block.subnn_energies, torch.zeros(2, 6))


def test_drop_mask_shared_by_blocks_of_one_scheme():
    torch.manual_seed(0)
    model = tiny(coding_ratios=('6/6', '3/6', '2/6')).train()
    model(torch.randn(16, 3, 16, 16))
    l2, l3 = model.layer2, model.layer3
    assert l2[0].drop_leader and not l2[1].drop_leader and l3[0].drop_leader
    assert l2[0].subnn_drop is l2[1].subnn_drop and l2[0].subnn_drop is not l3[0].subnn_drop
    mask = l2[0].subnn_drop.mask
    assert mask.shape == (16, 6) and not torch.equal(mask[0:8], mask[8:16])  # one mask per sample
    model.eval()
    out1, out2 = model(torch.ones(2, 3, 16, 16)), model(torch.ones(2, 3, 16, 16))
    assert torch.equal(out1, out2)  # deterministic eval, no dropping


def test_param_counts_match_table1():
    expect = {'coded_resnext29_10x11d': (4.7, (0.2, 0.9, 3.5)), 'coded_resnext29_20x6d': (4.7, (0.2, 0.9, 3.5)),
              'coded_resnext50_32x4d': (25.0, (0.2, 1.2, 7.0, 14.5))}
    for name, (total, stages) in expect.items():
        model = timm.create_model(name)
        count = sum(p.numel() for p in model.parameters()) / 1e6
        assert abs(count - total) < 0.1, (name, count)
        for stage, want in zip(model.stage_names, stages):
            got = sum(p.numel() for p in getattr(model, stage).parameters()) / 1e6
            assert abs(got - want) < 0.1, (name, stage, got)
    # exact counts, so a silent architecture change is caught
    assert sum(p.numel() for p in timm.create_model('coded_resnext29_10x11d').parameters()) == 4_638_936
    assert sum(p.numel() for p in timm.create_model('coded_resnext50_32x4d').parameters()) == 25_028_904


def test_registry_and_cfgs():
    assert set(MODELS) == set(timm.list_models(module='coded_resnext'))
    narrow = timm.create_model('coded_resnext11_10x4d')
    assert sum(p.numel() for p in narrow.parameters()) == 160_330 and narrow.pretrained_cfg['input_size'] == (3, 28, 28)
    assert not timm.list_models('coded*', pretrained=True)  # no weights exist yet: none advertised
    cfg = timm.get_pretrained_cfg('coded_resnext50_32x4d')
    assert cfg.input_size == (3, 160, 160) and cfg.test_input_size == (3, 224, 224) and cfg.pool_size == (5, 5)
    assert cfg.paper_ids == 'arXiv:2202.05343' and not cfg.has_weights
    cfg = timm.get_pretrained_cfg('coded_resnext29_20x6d')
    assert cfg.input_size == (3, 32, 32) and cfg.num_classes == 100 and cfg.crop_pct == 1.0
    model = timm.create_model('coded_resnext29_10x11d')
    assert model.coding_ratios == ('10/10', '5/10', '3/10')
    assert [b.coding_key for b in model.coded_blocks()] == ['r5_10'] * 3 + ['r3_10'] * 3
    assert model.coded_blocks()[0].subnn_drop.rate == 0.1
    with pytest.raises(RuntimeError):
        timm.create_model('coded_resnext29_10x11d', pretrained=True)


def test_builtin_codebooks_are_table4():
    model = timm.create_model('coded_resnext29_10x11d')
    schemes = model.coding_schemes()
    assert schemes['r3_10'].to_strings()[0] == '1001001000'  # airplane, Table 4
    assert schemes['r5_10'].to_strings()[-1] == '0100110011'  # truck, Table 4
    m100 = timm.create_model('coded_resnext29_20x6d')
    assert m100.codebooks.get('r8_20').shape == (100, 20)


def test_plain_ratios_equal_timm_resnext50():
    torch.manual_seed(0)
    ref = timm.create_model('resnext50_32x4d').eval()
    model = timm.create_model('coded_resnext50_32x4d', coding_ratios=('32/32',) * 4).eval()
    assert not model.coded_blocks()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model(x), ref(x))


def test_timm_resnext50_weights_load_into_coded():
    ref = timm.create_model('resnext50_32x4d')
    model = timm.create_model('coded_resnext50_32x4d')
    result = model.load_state_dict(ref.state_dict(), strict=True)  # codebooks are kept, not "missing"
    assert not result.missing_keys and not result.unexpected_keys
    assert model.codebooks.get('r8_32').shape == (1000, 32)


def test_checkpoint_with_other_codebook_fails_clearly():
    a = tiny()
    other = [row[::-1] for row in a.coding_schemes()['r3_6'].to_strings()]
    b = tiny(codebooks={'3/6': other})
    assert b.coding_schemes()['r3_6'].to_strings() == other
    with pytest.raises(RuntimeError, match='Codebook mismatch for ratio 3/6: class 0: checkpoint'):
        b.load_state_dict(a.state_dict())
    # same codebook loads; a class-count change (new head, non-strict as timm does) only warns
    tiny().load_state_dict(a.state_dict())
    sd = {k: v for k, v in tiny(num_classes=10).state_dict().items() if not k.startswith('fc.')}
    with pytest.warns(UserWarning, match='fine-tuning to a new class count'):
        tiny().load_state_dict(sd, strict=False)
    with pytest.raises(RuntimeError, match='Codebook mismatch'):
        tiny().load_state_dict(tiny(num_classes=10).state_dict(), strict=True)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match='only C\\(10, 5\\) = 252 distinct codewords'):
        timm.create_model('coded_resnext29_10x11d', num_classes=1000)
    with pytest.raises(ValueError, match="Unknown coding ratio 'half'"):
        timm.create_model('coded_resnext29_10x11d', coding_ratios=('10/10', 'half', '3/10'))
    with pytest.raises(ValueError, match='denominator 20'):
        timm.create_model('coded_resnext29_10x11d', coding_ratios=('10/10', '8/20', '3/10'))
    with pytest.raises(ValueError, match='one ratio per stage'):
        timm.create_model('coded_resnext29_10x11d', coding_ratios=('10/10', '5/10'))
    with pytest.raises(ValueError, match='outside 1..10'):
        timm.create_model('coded_resnext29_10x11d', coding_ratios=('10/10', '0/10', '3/10'))
    with pytest.raises(ValueError, match='drop_subnn_rate must be in'):
        timm.create_model('coded_resnext29_10x11d', drop_subnn_rate=1.0)
    with pytest.raises(ValueError, match='codewords'):
        tiny(codebooks={'3/6': ['111000'] * 6})  # duplicates, rejected by the scheme validation
    with pytest.raises(ValueError, match=r'plain ResNeXt baseline.*--coding-ratios 10/10 10/10 10/10'):
        timm.create_model('resnext23_10x4d', coding_ratios=('5/10', '5/10', '3/10'))  # a coded recipe's ratios
    assert timm.create_model('resnext23_10x4d', coding_ratios='10/10,10/10,10/10').coding_ratios == ('10/10',) * 3


def test_ratio_spellings_and_any_class_count():
    m = timm.create_model('coded_resnext29_10x11d', coding_ratios='10/10,5/10,3/10', num_classes=37)
    assert m.coding_ratios == ('10/10', '5/10', '3/10') and m.codebooks.get('r3_10').shape == (37, 10)
    m = timm.create_model('coded_resnext29_10x11d', coding_ratios=(10, 0.5, 3), num_classes=0)
    assert m.codebooks.get('r5_10').shape == (0, 10)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 1024)


def test_reset_classifier_rebuilds_codebooks():
    model = tiny()
    model.reset_classifier(9)
    assert model.fc.out_features == 9 and model.codebooks.get('r3_6').shape == (9, 6)
    assert len(set(model.coding_schemes()['r3_6'].to_strings())) == 9
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 128)


def test_features_only_and_intermediates():
    model = timm.create_model('coded_resnext29_10x11d', features_only=True)
    feats = model(torch.randn(2, 3, 32, 32))
    assert [f.shape[1:] for f in feats] == [(64, 32, 32), (256, 32, 32), (512, 16, 16), (1024, 8, 8)]
    assert model.feature_info.reduction() == [1, 1, 2, 4]
    model = tiny().eval()
    x = torch.randn(2, 3, 16, 16)
    final, inter = model.forward_intermediates(x)
    assert torch.equal(final, model.forward_features(x)) and len(inter) == 4
    model.prune_intermediate_layers(indices=[0, 1, 2])
    assert len(model.layer3) == 0 and isinstance(model.fc, nn.Identity)
    assert len(model.forward_intermediates(x, indices=[0, 1, 2], intermediates_only=True)) == 3


def test_grad_checkpointing_same_loss_and_grads():
    x = torch.randn(4, 3, 16, 16)
    results = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = tiny().train()
        model.set_grad_checkpointing(ckpt)
        torch.manual_seed(1)
        out = model(x)
        energy = sum(b.subnn_energies.pow(2).sum() for b in model.coded_blocks())
        (out.square().mean() + energy).backward()
        results.append((out.detach(), energy.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    for g0, g1 in zip(results[0][2], results[1][2]):
        torch.testing.assert_close(g0, g1, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_keeps_energies_fp32_and_channels_last():
    model = tiny().eval()
    x = torch.randn(2, 3, 16, 16)
    ref = model(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16 and model.coded_blocks()[0].subnn_energies.dtype == torch.float32
    torch.testing.assert_close(out.float(), ref, rtol=0.1, atol=0.1)
    cl = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(cl(x.to(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-5)


def test_group_matcher_and_classifier():
    model = tiny()
    assert model.get_classifier(name_only=True) == 'fc'
    from timm.models import group_parameters
    groups = group_parameters(model, model.group_matcher())
    assert len(groups) == 1 + 1 + 2 + 2 + 1  # stem, 5 blocks, head


@pytest.mark.slow
def test_torch_compile_train_step_keeps_energies():
    model = tiny().train()
    compiled = torch.compile(model)
    out = compiled(torch.randn(2, 3, 16, 16))
    energies = [b.subnn_energies for b in model.coded_blocks()]
    assert all(e is not None and e.requires_grad and e.shape == (2, 6) for e in energies)
    (out.sum() + sum(e.sum() for e in energies)).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize('train', [True, False])
def test_torch_compile_traces_one_graph(train):
    """Dynamo traces the whole model, coded op and its hand-written backward included, without a graph break."""
    torch._dynamo.reset()
    report = torch._dynamo.explain(tiny().train(train))(torch.randn(2, 3, 16, 16))
    assert report.graph_break_count == 0, report.break_reasons
    assert report.graph_count == 1


@pytest.mark.slow
def test_torch_compile_gradients_equal_eager():
    """Compiled forward + backward (the coded op's hand-written backward traced by AOTAutograd, including its
    out= product into the weight layout) gives eager's loss and parameter gradients."""
    torch.manual_seed(0)
    model = tiny(drop_subnn_rate=0.).train()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 5])

    def grads(net):
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y) + timm_coded.coding_loss(model, y)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}
    loss_eager, eager = grads(model)
    loss_compiled, compiled = grads(torch.compile(model))
    torch.testing.assert_close(loss_compiled, loss_eager, rtol=1e-5, atol=1e-6)
    for name, grad in eager.items():
        torch.testing.assert_close(compiled[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def gradcheck_inputs(channels_last: bool):
    """float64 features h (B=2, N=3 groups of d=2, 3x3) and a 1x1 expand weight (C=5), both requiring grad."""
    torch.manual_seed(0)
    h = torch.rand(2, 6, 3, 3, dtype=torch.float64)
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    return h.requires_grad_(), torch.randn(5, 6, 1, 1, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('drop', [False, True])
def test_fused_normalisation_backward_gradcheck(channels_last, drop):
    """SubNNCoding (Eq. 2-3 + dropSubNNs, hand-written backward) against numerical gradients and against
    its autograd definition, also when only one of its two outputs is used."""
    from timm_coded.layers.subnn_coding import SubNNCoding, _normalize_subnns_autograd
    h, w = gradcheck_inputs(channels_last)
    keep = torch.tensor([[0., 2., 2.], [2., 2., 0.]], dtype=torch.float64) if drop else None
    fused = lambda a, b: SubNNCoding.apply(a, b, keep, 3, 1e-6)
    assert torch.autograd.gradcheck(fused, (h, w))
    for pick in (0, 1):
        assert torch.autograd.gradcheck(lambda a, b: fused(a, b)[pick], (h, w))
    for out, ref in zip(fused(h, w), _normalize_subnns_autograd(h, w, 3, 1e-6, keep)):
        torch.testing.assert_close(out, ref)


def test_fused_op_equals_the_literal_equations():
    """normalize_subnns + the expand conv equal Eq. 2-3 + dropSubNNs written on the materialised t_n (float64)."""
    h, w = gradcheck_inputs(channels_last=False)
    keep = torch.tensor([[0., 2., 2.], [2., 2., 0.]], dtype=torch.float64)
    scaled, energies = timm_coded.normalize_subnns(h, w, 3, 1e-6, keep)
    ref_out, ref_energies = subnn_coding_reference(subnn_outputs(h, w, 3), keep, 1e-6)
    torch.testing.assert_close(F.conv2d(scaled, w), ref_out)
    torch.testing.assert_close(energies, ref_energies)
    torch.testing.assert_close(timm_coded.subnn_energies(h, w, 3), subnn_outputs(h, w, 3).pow(2).mean(dim=(2, 3, 4)))
