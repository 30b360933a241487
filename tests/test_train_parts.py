"""Parts of train_hooks.train: flags and recipes, the CIFAR pad-crop transform, padded evaluation."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import timm
from timm.data import resolve_data_config
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs

import timm_coded  # noqa: F401
from train_hooks.args import build_parser, list_recipes, load_recipe, parse_args
from train_hooks.data import PaddedDataset, create_datasets, create_loaders
from train_hooks.device import Runtime
from train_hooks.loop import CodedEvaluator

from helpers.data import needs_fashion_mnist


def test_unknown_flag_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(['--lrr', '0.1'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown argument(s): '--lrr'" in err and 'did you mean --lr' in err


def test_timm_flag_defaults():
    args, _ = parse_args([])
    assert (args.opt, args.momentum, args.weight_decay, args.sched, args.epochs, args.warmup_epochs) == (
        'sgd', 0.9, 2e-5, 'cosine', 300, 5)
    assert (args.batch_size, args.smoothing, args.model_ema_decay, args.log_interval, args.checkpoint_hist) == (
        128, 0.1, 0.9998, 50, 10)
    assert (args.lr, args.lr_base, args.remode, args.recount, args.hflip, args.workers) == (
        None, 0.1, 'pixel', 1, 0.5, 4)
    args, _ = parse_args(['--model-kwargs', 'layers=(1,1,1)', 'stem_type=cifar', '--coding-ratios', '10/10', '5/10'])
    assert args.model_kwargs == {'layers': (1, 1, 1), 'stem_type': 'cifar'}
    assert args.coding_ratios == ['10/10', '5/10']


def test_recipe_with_unknown_key_is_rejected(tmp_path, capsys):
    path = tmp_path / 'r.yaml'
    path.write_text('batch_sise: 64\n')
    with pytest.raises(SystemExit):
        parse_args(['--config', str(path)])
    assert "unknown key(s) 'batch_sise' (did you mean 'batch_size'?)" in capsys.readouterr().err


def test_shipped_recipes_parse_and_command_line_overrides():
    assert {'imagenet_160', 'cifar10', 'cifar100', 'fashion_mnist'} <= set(list_recipes())
    parser = build_parser()
    for name in list_recipes():
        load_recipe(name, parser)  # every key is a flag
    args, _ = parse_args(['--config', 'cifar10', '-b', '64'])
    assert (args.batch_size, args.lr, args.weight_decay, args.aa, args.pad_crop) == (64, 0.1, 5e-4, 'rand-m4-n3', 4)
    args, _ = parse_args(['--config', 'cifar100'])
    assert (args.model, args.aa, args.coding_loss_weight, args.drop_subnn) == (
        'coded_resnext29_20x6d', 'rand-m2-n1', 6.0, 0.1)


def test_imagenet_recipe_is_the_paper_appendix_b():
    args, _ = parse_args(['--config', 'imagenet_160'])
    assert (args.model, args.batch_size, args.lr, args.opt, args.momentum, args.weight_decay) == (
        'coded_resnext50_32x4d', 1536, 0.6, 'sgd', 0.9, 1e-4)
    assert (args.sched, args.min_lr, args.warmup_epochs, args.cooldown_epochs) == ('cosine', 1e-5, 5, 10)
    assert (args.aa, args.reprob, args.recount, args.coding_loss_weight, args.drop_subnn) == (
        'rand-m7-n2-mstd0.5-inc1', 0.4, 3, 2.0, 0.1)
    model = timm.create_model(args.model, num_classes=10)
    train_cfg = resolve_data_config(vars(args), model=model)
    eval_cfg = resolve_data_config(vars(args), model=model, use_test_size=True)
    assert train_cfg['input_size'] == (3, 160, 160) and eval_cfg['input_size'] == (3, 224, 224)
    optimizer = create_optimizer_v2(model, **optimizer_kwargs(cfg=args))
    assert optimizer.param_groups[0]['nesterov'] is True
    _, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(args), updates_per_epoch=1)
    assert num_epochs == 250  # 5 warm-up ... 10 cool-down


class _OneImage(torch.utils.data.Dataset):
    """20 copies of one grey image; timm's create_loader sets `transform`."""
    transform = None

    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(np.full((32, 32, 3), 200, np.uint8))), 0


def _train_transform(argv, use_prefetcher=False):
    args, _ = parse_args(argv + ['--workers', '0', '-b', '20'])
    ds, cfg = _OneImage(), dict(input_size=(3, 32, 32), interpolation='bilinear', mean=(0.5,) * 3, std=(0.25,) * 3,
                                crop_pct=1.0)
    loader, _ = create_loaders(args, (ds, _OneImage()), (cfg, cfg), Runtime(torch.device('cpu')), use_prefetcher)
    return ds.transform, loader


def test_pad_crop_replaces_timm_random_resized_crop():
    tf, loader = _train_transform(['--config', 'cifar10', '--reprob', '0'])
    names = [type(t).__name__ for t in tf.transforms]
    assert names == ['RandomCrop', 'RandomHorizontalFlip', 'RandAugment', 'MaybeToTensor', 'Normalize']
    torch.manual_seed(0)
    outs = next(iter(loader))[0]
    border = (0 - 0.5) / 0.25  # zero padding shows up as black pixels at some crops
    assert outs.shape == (20, 3, 32, 32) and (outs == border).any()
    tf, loader = _train_transform(['--config', 'fashion_mnist'])  # no --aa: the recipe turns timm's colour jitter off
    assert [type(t).__name__ for t in tf.transforms] == ['RandomCrop', 'RandomHorizontalFlip', 'MaybeToTensor',
                                                         'Normalize']
    outs = next(iter(loader))[0]
    assert (outs == border).any() and (outs == (200 / 255 - 0.5) / 0.25).any()  # padding and the image itself
    tf, _ = _train_transform(['--config', 'fashion_mnist'], use_prefetcher=True)  # uint8: the prefetcher normalises
    assert tf(Image.new('RGB', (32, 32))).dtype == torch.uint8
    with pytest.raises(SystemExit):
        parse_args(['--pad-crop', '4', '--train-crop-mode', 'rkrc'])


def test_padded_evaluation_counts_every_image_once():
    data = [(torch.zeros(1), i % 3) for i in range(10)]
    padded = PaddedDataset(data, 4)
    assert len(padded) == 12 and padded[9][1] == 0 and padded[10][1] == -1 and padded[11][1] == -1
    torch.manual_seed(0)
    logits = torch.randn(12, 3)
    target = torch.tensor([padded[i][1] for i in range(12)])
    evaluator = CodedEvaluator(torch.device('cpu'), ['layer3.0'])
    for i in range(0, 12, 4):  # fixed-shape batches, padding in the last one
        evaluator.update(logits[i:i + 4], target[i:i + 4], [logits[i:i + 4].argmax(1)])
    metrics = evaluator.compute(Runtime(torch.device('cpu')))
    real = target >= 0
    top1 = 100. * (logits[real].argmax(1) == target[real]).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits[real], target[real]).item()
    assert metrics['samples'] == 10
    assert metrics['top1'] == pytest.approx(top1) and metrics['dec_acc_layer3.0'] == pytest.approx(top1)
    assert metrics['loss'] == pytest.approx(loss, rel=1e-5) and metrics['top5'] == 100.


@needs_fashion_mnist
def test_fashion_mnist_grayscale_one_or_three_channels():
    for in_chans, mode in ((1, 'L'), (3, 'RGB')):
        args, _ = parse_args(['--dataset', 'fashion_mnist', '--train-per-class', '2', '--val-per-class', '1',
                              '--val-split', 'test'])
        train, val = create_datasets(args, in_chans)
        assert (len(train), len(val)) == (20, 10)
        assert train[0][0].mode == mode and sorted(set(int(t) for t in train.targets)) == list(range(10))


@pytest.mark.parametrize('device', ['cpu', 'cuda'])
def test_main_job_training_commands_parse(device):
    from train_hooks.main_job import CPU_BATCH, train_cmd
    cmd = train_cmd('coded_resnext23_10x4d', Path('out'), device, '/data', scale=1. if device == 'cpu' else 6.)
    args, _ = parse_args(cmd[cmd.index('train_hooks.train') + 1:])
    assert args.model == 'coded_resnext23_10x4d' and args.coding_loss_weight == 18.
    assert args.coding_ratios == (['10/10', '5/10', '3/10'] if device == 'cpu' else ['5/10', '5/10', '3/10'])
    plain = train_cmd('resnext23_10x4d', Path('out'), device, '/data', scale=1.)
    assert parse_args(plain[plain.index('train_hooks.train') + 1:])[0].coding_ratios == ['10/10'] * 3
    if device == 'cpu':  # the short CPU budget trains in smaller steps than the recipe
        assert (args.train_per_class, args.epochs, args.batch_size) == (1000, 5, CPU_BATCH)
    else:
        assert (args.train_per_class, args.epochs, args.batch_size) == (6000, 15, 128)
