""" Command line and YAML recipes of `python -m train_hooks.train`.

Flags are timm train.py's (names, meanings, defaults; but `--device` defaults to the best device available) plus
ours, marked "(ours)" in `--help`. A recipe (`--config`: a path, or the name of one in `train_hooks/recipes/`) is a
YAML mapping of flag destinations (e.g. `batch_size: 1536`) used as defaults; command line flags override it.
"""
import argparse
import difflib
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from timm.utils import ParseKwargs

__all__ = ['RECIPE_DIR', 'build_parser', 'parse_args', 'list_recipes', 'load_recipe']

RECIPE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'recipes')


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose unknown-flag error names the closest known flags."""

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        parts, known = [], list(self._option_string_actions)
        for token in unknown:
            flag = token.split('=', 1)[0]
            hint = difflib.get_close_matches(flag, known, n=2) if flag.startswith('-') else []
            parts.append(f'{token!r}' + (f' (did you mean {" or ".join(hint)}?)' if hint else ''))
        if parts:
            self.error(f'unknown argument(s): {", ".join(parts)}. See `python -m train_hooks.train --help`.')
        return parsed


_INT, _FLOAT, _FLOATS = dict(type=int), dict(type=float), dict(type=float, nargs='+')  # extra argparse kwargs
_KWARGS = dict(nargs='*', action=ParseKwargs)
# (group, [(flag names, default, help[, extra argparse kwargs])]): timm train.py's flags, ours marked "(ours)". The
# type follows the default unless given; a bool default makes a store_true / store_false switch.
_FLAGS = [
    ('Dataset', [
        ('--data-dir', None, 'path to dataset (root dir); optional for fashion_mnist'),
        ('--dataset', '', 'timm create_dataset "<type>/<name>" ("" image folder, torch/cifar10, hfds/<name>, ...), '
                          'or "fashion_mnist" from the Debian dataset-fashion-mnist files'),
        ('--train-split', 'train', 'dataset train split'),
        ('--val-split', 'validation', 'dataset validation split'),
        ('--dataset-download', False, 'allow download of torch/ and tfds/ datasets that support it'),
        ('--class-map', '', 'path to class to idx mapping file'),
        ('--input-img-mode', None, 'image conversion mode (default "L" when in_chans is 1, else "RGB")'),
        ('--train-per-class', None, '(ours) train on a class-balanced subset of N images per class', _INT),
        ('--val-per-class', None, '(ours) evaluate on a class-balanced subset of N images per class', _INT),
    ]),
    ('Model', [
        ('--model', 'coded_resnext29_10x11d', 'name of model to train'),
        ('--pretrained', False, 'start with pretrained version of specified network (if avail)'),
        ('--initial-checkpoint', '', 'load this checkpoint into model after initialization'),
        ('--resume', '', 'resume full model and optimizer state from checkpoint'),
        ('--no-resume-opt', False, 'prevent resume of optimizer state when resuming model'),
        ('--num-classes', None, 'number of label classes (model default if None)', _INT),
        ('--in-chans', None, 'image input channels (default: None => 3)', _INT),
        ('--img-size', None, 'image size (default: None => model default)', _INT),
        ('--input-size', None, 'input all image dimensions (d h w, e.g. 3 224 224)', {'type': int, 'nargs': 3}),
        ('--crop-pct', None, 'input image center crop percent (for validation only)', _FLOAT),
        ('--mean', None, 'override mean pixel value of dataset', _FLOATS),
        ('--std', None, 'override std deviation of dataset', _FLOATS),
        ('--interpolation', '', 'image resize interpolation type (overrides model)'),
        ('-b --batch-size', 128, 'input batch size per process (XLA SPMD: of the host, sharded over its devices)'),
        ('-vb --validation-batch-size', None, 'validation batch size override', _INT),
        ('--channels-last', False, 'use channels_last memory layout'),
        ('--grad-accum-steps', 1, 'the number of steps to accumulate gradients'),
        ('--grad-checkpointing', False, 'enable gradient checkpointing through model blocks/stages'),
        ('--model-kwargs', {}, 'extra model kwargs, key=value (python literals), e.g. layers="(1,1,1)"', _KWARGS),
        ('--drop', 0.0, 'dropout rate'),
        ('--drop-path', None, 'drop path rate', _FLOAT),
    ]),
    ('Coded ResNeXt (ours)', [
        ('--coding-loss-weight', None, "mu of Eq. 6 (default: $TIMM_CODED_MU or the model's own: 6 CIFAR stem, "
                                       "2 ImageNet stem)", _FLOAT),
        ('--drop-subnn', None, "p_drop of dropSubNNs (default: the model's, 0.1)", _FLOAT),
        ('--coding-ratios', None, 'coding ratio of each stage, e.g. 10/10 5/10 3/10 or 10/10,5/10,3/10 (all N/N '
                                  '= plain ResNeXt)', {'nargs': '+'}),
    ]),
    ('Optimizer and schedule', [
        ('--opt', 'sgd', 'optimizer ("sgd" is Nesterov momentum in timm)'),
        ('--opt-eps', None, 'optimizer epsilon', _FLOAT),
        ('--opt-betas', None, 'optimizer betas', _FLOATS),
        ('--momentum', 0.9, 'optimizer momentum'),
        ('--weight-decay', 2e-5, 'weight decay'),
        ('--opt-kwargs', {}, 'extra optimizer kwargs, key=value', _KWARGS),
        ('--sched', 'cosine', 'LR scheduler'),
        ('--sched-on-updates', False, 'apply LR scheduler step on update instead of epoch end'),
        ('--lr', None, 'learning rate, overrides lr-base if set', _FLOAT),
        ('--lr-base', 0.1, 'base learning rate: lr = lr_base * global_batch_size / lr_base_size'),
        ('--lr-base-size', 256, 'base learning rate batch size (divisor)'),
        ('--lr-base-scale', '', 'base learning rate vs batch_size scaling ("linear", "sqrt", by opt if empty)'),
        ('--warmup-lr', 1e-5, 'warmup learning rate'),
        ('--min-lr', 0., 'lower lr bound for cyclic schedulers that hit 0'),
        ('--epochs', 300, 'number of epochs to train (cooldown epochs come on top)'),
        ('--start-epoch', None, 'manual epoch number (useful on restarts)', _INT),
        ('--decay-epochs', 90., 'epoch interval to decay LR'),
        ('--decay-milestones', [90, 180, 270], 'epoch indices of the multistep LR decays', {'type': int, 'nargs': '+'}),
        ('--decay-rate --dr', 0.1, 'LR decay rate'),
        ('--warmup-epochs', 5, 'epochs to warmup LR, if scheduler supports'),
        ('--warmup-prefix', False, 'exclude warmup period from decay schedule'),
        ('--cooldown-epochs', 0, 'epochs to cooldown LR at min_lr, after cyclic schedule ends'),
    ]),
    ('Augmentation and regularization', [
        ('--no-aug', False, 'disable all training augmentation'),
        ('--train-crop-mode', None, 'training random crop mode (rrc, rkrc, rkrr)'),
        ('--pad-crop', 0, '(ours) CIFAR-style train crop: pad by PIXELS, random crop at input size, instead of '
                          "timm's random-resized crop; the rest of timm's train transform stays (0 = off)",
         {'metavar': 'PIXELS'}),
        ('--scale', [0.08, 1.0], 'random resize scale', _FLOATS),
        ('--ratio', [3. / 4., 4. / 3.], 'random resize aspect ratio', _FLOATS),
        ('--hflip', 0.5, 'horizontal flip training aug probability'),
        ('--vflip', 0., 'vertical flip training aug probability'),
        ('--color-jitter', 0.4, 'color jitter factor'),
        ('--aa', None, 'auto augment policy, e.g. "rand-m9-mstd0.5"'),
        ('--reprob', 0., 'random erase prob'),
        ('--remode', 'pixel', 'random erase mode'),
        ('--recount', 1, 'random erase count'),
        ('--mixup', 0., 'mixup alpha, mixup enabled if > 0.'),
        ('--cutmix', 0., 'cutmix alpha, cutmix enabled if > 0.'),
        ('--cutmix-minmax', None, 'cutmix min/max ratio, overrides alpha and enables cutmix if set', _FLOATS),
        ('--mixup-prob', 1.0, 'probability of performing mixup or cutmix when either/both is enabled'),
        ('--mixup-switch-prob', 0.5, 'probability of switching to cutmix when both mixup and cutmix enabled'),
        ('--mixup-mode', 'batch', 'how to apply mixup/cutmix params: per "batch", "pair", or "elem"'),
        ('--mixup-off-epoch', 0, 'turn off mixup after this epoch, disabled if 0'),
        ('--smoothing', 0.1, 'label smoothing'),
        ('--train-interpolation', 'random', 'training interpolation (random, bilinear, bicubic)'),
    ]),
    ('Model exponential moving average', [
        ('--model-ema', False, 'enable tracking moving average'),
        ('--model-ema-decay', 0.9998, 'decay factor for model weights moving average'),
        ('--model-ema-warmup', False, 'enable warmup for model EMA decay'),
    ]),
    ('Device, logging and checkpoints', [
        ('--seed', 42, 'random seed'),
        ('--log-interval', 50, 'how many batches to wait before logging training status'),
        ('--checkpoint-hist', 10, 'number of checkpoints to keep'),
        ('-j --workers', 4, 'how many data loading processes to use'),
        ('--amp', False, 'use mixed precision (autocast); bfloat16 on XLA'),
        ('--amp-dtype', 'float16', 'lower precision AMP dtype (XLA always uses bfloat16)'),
        ('--no-prefetcher', False, 'disable fast prefetcher (always off on XLA, which uses its parallel loader)'),
        ('--pin-mem', False, 'pin CPU memory in DataLoader for more efficient transfer to GPU'),
        ('--output', '', 'path to output folder (default: none, current dir)'),
        ('--experiment', '', 'name of train experiment, name of sub-folder for output'),
        ('--eval-metric', 'top1', 'best metric'),
        ('--sync-bn', False, 'enable synchronized BatchNorm (CUDA DDP)'),
        ('--dist-bn', 'reduce', 'distribute BatchNorm stats between nodes each epoch ("broadcast", "reduce" or "")'),
        ('--torchcompile', None, 'enable compilation w/ specified backend (default: inductor)',
         {'nargs': '?', 'const': 'inductor'}),
        ('--device', None, 'device: cpu, cuda, cuda:N, xla (default: cuda if available, else xla when $PJRT_DEVICE '
                           'is set and torch_xla is installed, else cpu)'),
        ('--xla-spmd', None, '(ours) XLA SPMD data parallelism over every device of the host (default: on when '
                             'the host has more than one XLA device)', {'action': argparse.BooleanOptionalAction}),
        ('--xla-metrics', False, '(ours) write per-step XLA compile / device-to-host transfer counts to '
                                 'xla_metrics.json in the output folder'),
    ]),
]


def build_parser() -> argparse.ArgumentParser:
    """The full flag set (timm train.py names plus the Coded ResNeXt flags)."""
    parser = _Parser(
        prog='python -m train_hooks.train',
        description='Train a (Coded) ResNeXt with timm library parts on CPU, CUDA (torchrun DDP) or XLA/TPU.')
    parser.add_argument('-c', '--config', default='', type=str, metavar='FILE',
                        help='YAML recipe whose keys are flag names (e.g. batch_size); a path or the name of '
                             f'a shipped recipe ({", ".join(list_recipes()) or "none"})')
    for title, flags in _FLAGS:
        group = parser.add_argument_group(title)
        for names, default, help, *extra in flags:
            kwargs = dict(*extra)
            if isinstance(default, bool) and 'action' not in kwargs:
                kwargs['action'] = 'store_false' if default else 'store_true'
            elif not {'type', 'action'} & kwargs.keys() and default is not None and not isinstance(default, list):
                kwargs['type'] = type(default)
            group.add_argument(*names.split(), default=default, help=help, **kwargs)
    return parser


def list_recipes() -> List[str]:
    """Names of the recipes shipped in train_hooks/recipes."""
    return sorted(f[:-5] for f in os.listdir(RECIPE_DIR) if f.endswith('.yaml'))


def load_recipe(name_or_path: str, parser: argparse.ArgumentParser) -> Dict[str, Any]:
    """The mapping of a YAML recipe (a file path or the name of a shipped recipe), every key checked against the
    parser's flag destinations."""
    path = name_or_path
    if not os.path.isfile(path):
        path = os.path.join(RECIPE_DIR, os.path.basename(name_or_path).removesuffix('.yaml') + '.yaml')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Recipe {name_or_path!r} not found: give a YAML file path or one of the shipped '
                                f'recipes: {", ".join(list_recipes())}.')
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f'Recipe {path} must be a YAML mapping of flag names to values, got {type(cfg).__name__}.')
    dests = {a.dest for a in parser._actions}
    unknown = sorted(k for k in cfg if k not in dests)
    if unknown:
        hints = {k: difflib.get_close_matches(k, list(dests), n=1) for k in unknown}
        detail = ', '.join(f'{k!r}' + (f' (did you mean {h[0]!r}?)' if h else '') for k, h in hints.items())
        raise ValueError(f'Recipe {path} has unknown key(s) {detail}: keys are flag names with "_" for "-".')
    return cfg


def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[argparse.Namespace, str]:
    """Parse the recipe (if any) then the command line; returns (args, args as YAML text)."""
    config_parser = argparse.ArgumentParser(add_help=False)
    config_parser.add_argument('-c', '--config', default='', type=str)
    args_config, remaining = config_parser.parse_known_args(argv)
    parser = build_parser()
    if args_config.config:
        try:
            parser.set_defaults(**load_recipe(args_config.config, parser))
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))
    args = parser.parse_args(remaining)
    args.config = args_config.config
    _check(parser, args)
    args_text = yaml.safe_dump(json.loads(json.dumps(vars(args))), default_flow_style=False)  # tuples as lists
    return args, args_text


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject inconsistent values early, with the fix in the message."""
    if args.batch_size < 1 or (args.validation_batch_size is not None and args.validation_batch_size < 1):
        parser.error('--batch-size and --validation-batch-size must be >= 1.')
    if args.grad_accum_steps < 1:
        parser.error(f'--grad-accum-steps must be >= 1, got {args.grad_accum_steps}.')
    if args.drop_subnn is not None and not 0. <= args.drop_subnn < 1.:
        parser.error(f'--drop-subnn (p_drop) must be in [0, 1), got {args.drop_subnn}.')
    if args.coding_loss_weight is not None and args.coding_loss_weight < 0:
        parser.error(f'--coding-loss-weight (mu) must be >= 0, got {args.coding_loss_weight}.')
    if args.amp_dtype not in ('float16', 'bfloat16'):
        parser.error(f"--amp-dtype must be 'float16' or 'bfloat16', got {args.amp_dtype!r}.")
    if args.pad_crop < 0:
        parser.error(f'--pad-crop must be >= 0 pixels, got {args.pad_crop}.')
    if args.pad_crop and args.train_crop_mode not in (None, 'rrc'):
        parser.error(f'--pad-crop replaces the random-resized crop: drop --train-crop-mode {args.train_crop_mode}.')
    if args.model_kwargs is None:
        args.model_kwargs = {}
    if not isinstance(args.model_kwargs, dict):
        parser.error(f'model_kwargs must be a mapping (key=value on the command line), got {args.model_kwargs!r}.')
