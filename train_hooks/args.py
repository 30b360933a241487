""" Command line and YAML recipes of `python -m train_hooks.train`.

Flags follow timm's train.py (same names, meanings and defaults) except where noted in `--help`:
`--device` defaults to the best available device rather than 'cuda'; the Coded ResNeXt flags
(`--coding-loss-weight`, `--drop-subnn`, `--coding-ratios`) and a few data / XLA flags are ours.

A recipe (`--config`) is a YAML mapping of flag destinations (e.g. `batch_size: 1536`) used as defaults;
command line flags override it. `--config NAME` also finds the recipes shipped in `train_hooks/recipes/`.
"""
import argparse
import difflib
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from timm.utils import ParseKwargs

__all__ = ['RECIPE_DIR', 'build_parser', 'parse_args', 'list_recipes', 'load_recipe', 'resolve_recipe']

RECIPE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'recipes')


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose unknown-flag error names the closest known flags."""

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            self.error(_unknown_message(unknown, self._option_string_actions))
        return parsed


def _unknown_message(unknown: Sequence[str], known: Sequence[str]) -> str:
    parts = []
    for token in unknown:
        flag = token.split('=', 1)[0]
        hint = difflib.get_close_matches(flag, list(known), n=2, cutoff=0.6) if flag.startswith('-') else []
        parts.append(f'{token!r}' + (f' (did you mean {" or ".join(hint)}?)' if hint else ''))
    return f'unknown argument(s): {", ".join(parts)}. See `python -m train_hooks.train --help`.'


def _add_data(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Dataset')
    group.add_argument('--data-dir', metavar='DIR', help='path to dataset (root dir); optional for fashion_mnist')
    group.add_argument('--dataset', metavar='NAME', default='',
                       help='dataset type + name ("<type>/<name>"): "" = image folder, torch/cifar10, '
                            'hfds/<name>, ... (timm create_dataset); "fashion_mnist" reads the Debian '
                            'dataset-fashion-mnist files offline')
    group.add_argument('--train-split', metavar='NAME', default='train', help='dataset train split')
    group.add_argument('--val-split', metavar='NAME', default='validation', help='dataset validation split')
    group.add_argument('--dataset-download', action='store_true', default=False,
                       help='allow download of dataset for torch/ and tfds/ datasets that support it')
    group.add_argument('--class-map', default='', type=str, metavar='FILENAME',
                       help='path to class to idx mapping file')
    group.add_argument('--input-img-mode', default=None, type=str,
                       help='dataset image conversion mode (default "L" when in_chans is 1, else "RGB")')
    group.add_argument('--train-per-class', type=int, default=None, metavar='N',
                       help='(ours) train on a class-balanced subset of N images per class')
    group.add_argument('--val-per-class', type=int, default=None, metavar='N',
                       help='(ours) evaluate on a class-balanced subset of N images per class')


def _add_model(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Model')
    group.add_argument('--model', default='coded_resnext29_10x11d', type=str, metavar='MODEL',
                       help='name of model to train (default: "coded_resnext29_10x11d")')
    group.add_argument('--pretrained', action='store_true', default=False,
                       help='start with pretrained version of specified network (if avail)')
    group.add_argument('--initial-checkpoint', default='', type=str, metavar='PATH',
                       help='load this checkpoint into model after initialization (default: none)')
    group.add_argument('--resume', default='', type=str, metavar='PATH',
                       help='resume full model and optimizer state from checkpoint (default: none)')
    group.add_argument('--no-resume-opt', action='store_true', default=False,
                       help='prevent resume of optimizer state when resuming model')
    group.add_argument('--num-classes', type=int, default=None, metavar='N',
                       help='number of label classes (model default if None)')
    group.add_argument('--in-chans', type=int, default=None, metavar='N',
                       help='image input channels (default: None => 3)')
    group.add_argument('--img-size', type=int, default=None, metavar='N',
                       help='image size (default: None => model default)')
    group.add_argument('--input-size', default=None, nargs=3, type=int, metavar='N',
                       help='input all image dimensions (d h w, e.g. --input-size 3 224 224)')
    group.add_argument('--crop-pct', default=None, type=float, metavar='N',
                       help='input image center crop percent (for validation only)')
    group.add_argument('--mean', type=float, nargs='+', default=None, metavar='MEAN',
                       help='override mean pixel value of dataset')
    group.add_argument('--std', type=float, nargs='+', default=None, metavar='STD',
                       help='override std deviation of dataset')
    group.add_argument('--interpolation', default='', type=str, metavar='NAME',
                       help='image resize interpolation type (overrides model)')
    group.add_argument('-b', '--batch-size', type=int, default=128, metavar='N',
                       help='input batch size for training per process (default: 128); with XLA SPMD the '
                            'batch of the host, sharded over its devices')
    group.add_argument('-vb', '--validation-batch-size', type=int, default=None, metavar='N',
                       help='validation batch size override (default: None)')
    group.add_argument('--channels-last', action='store_true', default=False,
                       help='use channels_last memory layout')
    group.add_argument('--grad-accum-steps', type=int, default=1, metavar='N',
                       help='the number of steps to accumulate gradients (default: 1)')
    group.add_argument('--grad-checkpointing', action='store_true', default=False,
                       help='enable gradient checkpointing through model blocks/stages')
    group.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                       help='extra model kwargs, key=value (python literals), e.g. layers="(1,1,1)"')
    group.add_argument('--drop', type=float, default=0.0, metavar='PCT', help='dropout rate (default: 0.)')
    group.add_argument('--drop-path', type=float, default=None, metavar='PCT',
                       help='drop path rate (default: None)')


def _add_coded(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Coded ResNeXt (ours)')
    group.add_argument('--coding-loss-weight', type=float, default=None, metavar='MU',
                       help='mu of Eq. 6, L = L_class + mu * sum_l L_code,l (default: $TIMM_CODED_MU or the '
                            "model's own: 6 CIFAR stem, 2 ImageNet stem)")
    group.add_argument('--drop-subnn', type=float, default=None, metavar='P',
                       help="p_drop of dropSubNNs (default: the model's, 0.1)")
    group.add_argument('--coding-ratios', nargs='+', default=None, metavar='A/N',
                       help='coding ratio of each stage, e.g. 10/10 5/10 3/10 (all N/N = plain ResNeXt)')


def _add_optim(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Optimizer and schedule')
    group.add_argument('--opt', default='sgd', type=str, metavar='OPTIMIZER',
                       help='optimizer (default: "sgd", Nesterov momentum in timm)')
    group.add_argument('--opt-eps', default=None, type=float, metavar='EPSILON', help='optimizer epsilon')
    group.add_argument('--opt-betas', default=None, type=float, nargs='+', metavar='BETA',
                       help='optimizer betas')
    group.add_argument('--momentum', type=float, default=0.9, metavar='M', help='optimizer momentum (0.9)')
    group.add_argument('--weight-decay', type=float, default=2e-5, help='weight decay (default: 2e-5)')
    group.add_argument('--opt-kwargs', nargs='*', default={}, action=ParseKwargs,
                       help='extra optimizer kwargs, key=value')
    group.add_argument('--sched', type=str, default='cosine', metavar='SCHEDULER',
                       help='LR scheduler (default: "cosine")')
    group.add_argument('--sched-on-updates', action='store_true', default=False,
                       help='apply LR scheduler step on update instead of epoch end')
    group.add_argument('--lr', type=float, default=None, metavar='LR',
                       help='learning rate, overrides lr-base if set (default: None)')
    group.add_argument('--lr-base', type=float, default=0.1, metavar='LR',
                       help='base learning rate: lr = lr_base * global_batch_size / lr_base_size')
    group.add_argument('--lr-base-size', type=int, default=256, metavar='DIV',
                       help='base learning rate batch size (divisor, default: 256)')
    group.add_argument('--lr-base-scale', type=str, default='', metavar='SCALE',
                       help='base learning rate vs batch_size scaling ("linear", "sqrt", based on opt if empty)')
    group.add_argument('--warmup-lr', type=float, default=1e-5, metavar='LR',
                       help='warmup learning rate (default: 1e-5)')
    group.add_argument('--min-lr', type=float, default=0, metavar='LR',
                       help='lower lr bound for cyclic schedulers that hit 0 (default: 0)')
    group.add_argument('--epochs', type=int, default=300, metavar='N',
                       help='number of epochs to train (default: 300; cooldown epochs come on top)')
    group.add_argument('--start-epoch', default=None, type=int, metavar='N',
                       help='manual epoch number (useful on restarts)')
    group.add_argument('--decay-epochs', type=float, default=90, metavar='N', help='epoch interval to decay LR')
    group.add_argument('--decay-milestones', default=[90, 180, 270], type=int, nargs='+', metavar='MILESTONES',
                       help='list of decay epoch indices for multistep lr')
    group.add_argument('--decay-rate', '--dr', type=float, default=0.1, metavar='RATE', help='LR decay rate')
    group.add_argument('--warmup-epochs', type=int, default=5, metavar='N',
                       help='epochs to warmup LR, if scheduler supports (default: 5)')
    group.add_argument('--warmup-prefix', action='store_true', default=False,
                       help='exclude warmup period from decay schedule')
    group.add_argument('--cooldown-epochs', type=int, default=0, metavar='N',
                       help='epochs to cooldown LR at min_lr, after cyclic schedule ends')


def _add_aug(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Augmentation and regularization')
    group.add_argument('--no-aug', action='store_true', default=False, help='disable all training augmentation')
    group.add_argument('--train-crop-mode', type=str, default=None, help='training random crop mode (rrc, rkrc, rkrr)')
    group.add_argument('--pad-crop', type=int, default=0, metavar='PIXELS',
                       help='(ours) CIFAR-style train crop: pad by PIXELS, random crop at input size, instead '
                            'of random-resized-crop (0 = off)')
    group.add_argument('--scale', type=float, nargs='+', default=[0.08, 1.0], metavar='PCT',
                       help='random resize scale (default: 0.08 1.0)')
    group.add_argument('--ratio', type=float, nargs='+', default=[3. / 4., 4. / 3.], metavar='RATIO',
                       help='random resize aspect ratio (default: 0.75 1.33)')
    group.add_argument('--hflip', type=float, default=0.5, help='horizontal flip training aug probability')
    group.add_argument('--vflip', type=float, default=0., help='vertical flip training aug probability')
    group.add_argument('--color-jitter', type=float, default=0.4, metavar='PCT',
                       help='color jitter factor (default: 0.4)')
    group.add_argument('--aa', type=str, default=None, metavar='NAME',
                       help='auto augment policy, e.g. "rand-m9-mstd0.5" (default: None)')
    group.add_argument('--reprob', type=float, default=0., metavar='PCT',
                       help='random erase prob (default: 0.)')
    group.add_argument('--remode', type=str, default='pixel', help='random erase mode (default: "pixel")')
    group.add_argument('--recount', type=int, default=1, help='random erase count (default: 1)')
    group.add_argument('--mixup', type=float, default=0.0, help='mixup alpha, mixup enabled if > 0. (default: 0.)')
    group.add_argument('--cutmix', type=float, default=0.0,
                       help='cutmix alpha, cutmix enabled if > 0. (default: 0.)')
    group.add_argument('--cutmix-minmax', type=float, nargs='+', default=None,
                       help='cutmix min/max ratio, overrides alpha and enables cutmix if set (default: None)')
    group.add_argument('--mixup-prob', type=float, default=1.0,
                       help='probability of performing mixup or cutmix when either/both is enabled')
    group.add_argument('--mixup-switch-prob', type=float, default=0.5,
                       help='probability of switching to cutmix when both mixup and cutmix enabled')
    group.add_argument('--mixup-mode', type=str, default='batch',
                       help='how to apply mixup/cutmix params. Per "batch", "pair", or "elem"')
    group.add_argument('--mixup-off-epoch', default=0, type=int, metavar='N',
                       help='turn off mixup after this epoch, disabled if 0 (default: 0)')
    group.add_argument('--smoothing', type=float, default=0.1, help='label smoothing (default: 0.1)')
    group.add_argument('--train-interpolation', type=str, default='random',
                       help='training interpolation (random, bilinear, bicubic default: "random")')


def _add_ema(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Model exponential moving average')
    group.add_argument('--model-ema', action='store_true', default=False, help='enable tracking moving average')
    group.add_argument('--model-ema-decay', type=float, default=0.9998,
                       help='decay factor for model weights moving average (default: 0.9998)')
    group.add_argument('--model-ema-warmup', action='store_true', help='enable warmup for model EMA decay')


def _add_misc(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Device, logging and checkpoints')
    group.add_argument('--seed', type=int, default=42, metavar='S', help='random seed (default: 42)')
    group.add_argument('--log-interval', type=int, default=50, metavar='N',
                       help='how many batches to wait before logging training status')
    group.add_argument('--checkpoint-hist', type=int, default=10, metavar='N',
                       help='number of checkpoints to keep (default: 10)')
    group.add_argument('-j', '--workers', type=int, default=4, metavar='N',
                       help='how many training processes to use (default: 4)')
    group.add_argument('--amp', action='store_true', default=False,
                       help='use mixed precision (autocast); bfloat16 on XLA')
    group.add_argument('--amp-dtype', default='float16', type=str,
                       help='lower precision AMP dtype (default: float16; XLA always uses bfloat16)')
    group.add_argument('--no-prefetcher', action='store_true', default=False,
                       help='disable fast prefetcher (always off on XLA, which uses its parallel loader)')
    group.add_argument('--pin-mem', action='store_true', default=False,
                       help='pin CPU memory in DataLoader for more efficient transfer to GPU')
    group.add_argument('--output', default='', type=str, metavar='PATH',
                       help='path to output folder (default: none, current dir)')
    group.add_argument('--experiment', default='', type=str, metavar='NAME',
                       help='name of train experiment, name of sub-folder for output')
    group.add_argument('--eval-metric', default='top1', type=str, metavar='EVAL_METRIC',
                       help='best metric (default: "top1")')
    group.add_argument('--sync-bn', action='store_true', default=False,
                       help='enable NVIDIA Apex or Torch synchronized BatchNorm (CUDA DDP).')
    group.add_argument('--dist-bn', type=str, default='reduce',
                       help='distribute BatchNorm stats between nodes after each epoch ("broadcast", '
                            '"reduce", or "")')
    group.add_argument('--torchcompile', nargs='?', type=str, default=None, const='inductor',
                       help='enable compilation w/ specified backend (default: inductor).')
    group.add_argument('--device', default=None, type=str,
                       help='device: cpu, cuda, cuda:N, xla (default: cuda if available, else xla when '
                            '$PJRT_DEVICE is set and torch_xla is installed, else cpu)')
    group.add_argument('--xla-spmd', default=None, action=argparse.BooleanOptionalAction,
                       help='(ours) XLA SPMD data parallelism over every device of the host (default: on when '
                            'the host has more than one XLA device)')
    group.add_argument('--xla-metrics', action='store_true', default=False,
                       help='(ours) write per-step XLA compile / device-to-host transfer counts to '
                            'xla_metrics.json in the output folder')


def build_parser() -> argparse.ArgumentParser:
    """The full flag set (timm train.py names plus the Coded ResNeXt flags)."""
    parser = _Parser(
        prog='python -m train_hooks.train',
        description='Train a (Coded) ResNeXt with timm library parts on CPU, CUDA (torchrun DDP) or XLA/TPU.')
    parser.add_argument('-c', '--config', default='', type=str, metavar='FILE',
                        help='YAML recipe whose keys are flag names (e.g. batch_size); a path or the name of '
                             f'a shipped recipe ({", ".join(list_recipes()) or "none"})')
    _add_data(parser)
    _add_model(parser)
    _add_coded(parser)
    _add_optim(parser)
    _add_aug(parser)
    _add_ema(parser)
    _add_misc(parser)
    return parser


def list_recipes() -> List[str]:
    """Names of the recipes shipped in train_hooks/recipes."""
    if not os.path.isdir(RECIPE_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(RECIPE_DIR) if f.endswith('.yaml'))


def resolve_recipe(name_or_path: str) -> str:
    """Path of a recipe given as a file path or as the name of a shipped recipe."""
    if os.path.isfile(name_or_path):
        return name_or_path
    name = os.path.basename(name_or_path)
    name = name[:-5] if name.endswith('.yaml') else name
    path = os.path.join(RECIPE_DIR, name + '.yaml')
    if os.path.isfile(path):
        return path
    raise FileNotFoundError(
        f'Recipe {name_or_path!r} not found: give a YAML file path or one of the shipped recipes: '
        f'{", ".join(list_recipes())}.')


def load_recipe(name_or_path: str, parser: Optional[argparse.ArgumentParser] = None) -> Dict[str, Any]:
    """The mapping of a YAML recipe, every key checked against the parser's flag destinations."""
    path = resolve_recipe(name_or_path)
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f'Recipe {path} must be a YAML mapping of flag names to values, got {type(cfg).__name__}.')
    parser = parser or build_parser()
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
    args_text = yaml.safe_dump(_plain(vars(args)), default_flow_style=False)
    return args, args_text


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the args dump as plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
    if args.model_kwargs is None:
        args.model_kwargs = {}
    if not isinstance(args.model_kwargs, dict):
        parser.error(f'model_kwargs must be a mapping (key=value on the command line), got {args.model_kwargs!r}.')
