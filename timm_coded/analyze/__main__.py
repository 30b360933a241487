""" Command line: full interpretability report of a trained Coded ResNeXt.

    python -m timm_coded.analyze --model coded_resnext29_10x11d --checkpoint output/train/.../model_best.pth.tar \
        --dataset fashion_mnist --output report/

writes report/report.md (with PNG figures), report/results.json and report/figures/*.json.
"""
import argparse
import shlex
import sys
import time
from typing import List, Optional

from timm.utils import ParseKwargs

from ..checkpoint import CheckpointError, model_from_checkpoint
from .loading import FASHION_MNIST_NAMES, build_dataset, resolve_eval_config, subsample
from .report import run_analysis, write_report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m timm_coded.analyze', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group('model')
    g.add_argument('--model', default=None, help='timm model name (default: the one recorded in the checkpoint)')
    g.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                   help='extra model kwargs k=v (as train.py), e.g. num_classes=10 in_chans=1')
    g.add_argument('--checkpoint', required=True,
                   help='timm CheckpointSaver .pth.tar (with state_dict), bare state_dict .pth or .safetensors')
    g.add_argument('--use-ema', action='store_true', help='use the checkpoint\'s EMA weights (state_dict_ema)')
    g.add_argument('--baseline-checkpoint', default=None, help='trained plain ResNeXt of the same architecture')
    g.add_argument('--baseline-model', default=None, help='its architecture (default: the one its checkpoint records)')
    g.add_argument('--baseline-model-kwargs', nargs='*', default={}, action=ParseKwargs)
    g = p.add_argument_group('data')
    g.add_argument('--dataset', required=True,
                   help="'fashion_mnist', or a timm dataset name ('' / 'folder' = ImageFolder under --data-dir)")
    g.add_argument('--data-dir', default=None, help='dataset folder (default for fashion_mnist: Debian package)')
    g.add_argument('--train-split', default='train')
    g.add_argument('--val-split', default='validation')
    g.add_argument('--ood-dataset', default=None,
                   help="out-of-distribution negatives: 'digits' (default for fashion_mnist), a timm dataset or 'none'")
    g.add_argument('--ood-data-dir', default=None)
    g.add_argument('--ood-split', default='validation')
    g.add_argument('--train-samples', type=int, default=5000,
                   help='training images (class-balanced subset) the BC thresholds are chosen on; 0 = all')
    g.add_argument('--max-samples', type=int, default=None,
                   help='at most this many validation / OOD samples (class-balanced); default the whole split')
    g.add_argument('--input-size', type=int, nargs=3, default=None, metavar=('C', 'H', 'W'),
                   help='override the preprocessing (default: training args in the checkpoint, else pretrained_cfg)')
    g.add_argument('--mean', type=float, nargs='+', default=None)
    g.add_argument('--std', type=float, nargs='+', default=None)
    g.add_argument('--crop-pct', type=float, default=None)
    g.add_argument('--interpolation', default=None)
    g = p.add_argument_group('analysis')
    g.add_argument('--classes', type=int, nargs='+', default=None, help='classes whose BCs are analysed (default all)')
    g.add_argument('--removal-blocks', nargs='+', help='coded blocks for the removal curves (default all)')
    g.add_argument('--calibration-repeats', type=int, default=10,
                   help='random stratified splits per split ratio (the paper uses 41)')
    g.add_argument('--seed', type=int, default=0)
    g.add_argument('--batch-size', type=int, default=128)
    g.add_argument('--workers', type=int, default=0)
    g.add_argument('--device', default='cpu')
    p.add_argument('--output', required=True, help='report folder (created)')
    return p


def _class_names(ds, num_classes: int) -> List[str]:
    mapping = getattr(getattr(ds, 'reader', None), 'class_to_idx', None) or {}
    names = list(getattr(ds, 'classes', None) or sorted(mapping, key=mapping.get))
    return names + [str(k) for k in range(len(names), num_classes)] if len(names) <= num_classes else \
        [str(k) for k in range(num_classes)]


def main(argv: Optional[List[str]] = None) -> str:
    args = build_parser().parse_args(argv)
    model, train_args, _ = model_from_checkpoint(args.checkpoint, args.model, args.model_kwargs, args.use_ema)
    model.to(args.device)
    overrides = {k: getattr(args, k) for k in ('input_size', 'mean', 'std', 'crop_pct', 'interpolation')}
    data_config = resolve_eval_config(model, train_args, overrides)
    if args.baseline_model and not args.baseline_checkpoint:
        raise SystemExit('error: --baseline-model needs --baseline-checkpoint (the trained plain ResNeXt).')
    baseline = None if not args.baseline_checkpoint else model_from_checkpoint(
        args.baseline_checkpoint, args.baseline_model, args.baseline_model_kwargs, args.use_ema)[0].to(args.device)
    in_chans = int(data_config['input_size'][0])

    def load(name, split, root, samples):
        return subsample(build_dataset(name, split, root, data_config, in_chans), samples, args.seed)
    train_set = load(args.dataset, args.train_split, args.data_dir, args.train_samples)
    test_set = load(args.dataset, args.val_split, args.data_dir, args.max_samples)
    ood_name = args.ood_dataset or ('digits' if args.dataset.lower() in FASHION_MNIST_NAMES else 'none')
    ood_set = None if ood_name.lower() == 'none' else load(ood_name, args.ood_split, args.ood_data_dir,
                                                           args.max_samples)
    start = time.time()
    analysis = run_analysis(
        model, train_set, test_set, ood_set, baseline=baseline, classes=args.classes,
        class_names=_class_names(getattr(test_set, 'dataset', test_set), int(model.num_classes)),
        input_size=data_config['input_size'], batch_size=args.batch_size, workers=args.workers,
        device=args.device, removal_blocks=args.removal_blocks, calibration_repeats=args.calibration_repeats,
        seed=args.seed, log=lambda m: print(f'[analyze {time.time() - start:6.1f}s] {m}', file=sys.stderr, flush=True))
    meta = {'model': model.pretrained_cfg.get('architecture', args.model), 'checkpoint': args.checkpoint,
            'dataset': args.dataset, 'ood_dataset': ood_name if ood_set is not None else None,
            'baseline': args.baseline_checkpoint, 'data_config': dict(data_config), 'device': args.device,
            'command': 'python -m timm_coded.analyze ' + ' '.join(shlex.quote(a) for a in (argv or sys.argv[1:]))}
    path = write_report(analysis, args.output, meta)
    print(path)
    return path


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, ValueError, FileNotFoundError, ImportError) as e:
        sys.exit(f'error: {e}')
