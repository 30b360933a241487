""" Train a Coded ResNeXt (or any timm model) with timm's library parts, on CPU, CUDA, torchrun DDP or XLA/TPU.

    PJRT_DEVICE=TPU python -m train_hooks.train --config imagenet_160 --data-dir /data/imagenet  # TPU host, SPMD
    python -m train_hooks.train --config fashion_mnist --device cpu                              # offline, minutes
    torchrun --nproc_per_node 8 -m train_hooks.train --config imagenet_160 -b 192 --data-dir /data/imagenet

Flags are timm train.py's (`train_hooks.args`), recipes are in `train_hooks/recipes/`. The loss is
`CodedClassificationTask` (L_class + mu * coding loss, Eq. 6) with coded blocks, timm's `ClassificationTask` otherwise.
Each epoch reseeds every RNG from (seed, epoch, rank) and `--resume` restores the whole state of the last completed
epoch, so a run killed mid-epoch and resumed from its `last.pth.tar` ends in the state of an uninterrupted run.
"""
import logging
import os
import sys
from collections import OrderedDict
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

import timm
from timm.data import resolve_data_config
from timm.models import safe_model_name
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.task import ClassificationTask
from timm.utils import CheckpointSaver, NativeScaler, distribute_bn, get_outdir, setup_default_logging, trim_summary, \
    update_summary

from timm_coded.checkpoint import CheckpointError, check_checkpoint
from timm_coded.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, dataset_targets
from timm_coded.layers import named_coded_blocks

from .args import parse_args
from .checkpoint import TrainState, resume_training, saver_kwargs
from .data import FASHION_MNIST, create_datasets, create_loaders, create_mixup
from .device import Runtime, epoch_seed, setup_runtime
from .loop import train_one_epoch, validate
from .task import CodedClassificationTask

_logger = logging.getLogger('train')

__all__ = ['main', 'build_model', 'build_task']


def _in_chans(args) -> int:
    return args.input_size[0] if args.input_size is not None else args.in_chans or 3


def build_model(args) -> nn.Module:
    """timm.create_model with the model kwargs, the coded flags and the timm model flags."""
    flags = dict(drop_subnn_rate=args.drop_subnn, coding_ratios=args.coding_ratios and tuple(args.coding_ratios),
                 drop_path_rate=args.drop_path)
    kwargs = dict(args.model_kwargs, **{k: v for k, v in flags.items() if v is not None})
    if args.initial_checkpoint:
        check_checkpoint(args.initial_checkpoint)
    try:
        model = timm.create_model(
            args.model, pretrained=args.pretrained, in_chans=_in_chans(args), num_classes=args.num_classes,
            drop_rate=args.drop, checkpoint_path=args.initial_checkpoint or None, **kwargs)
    except TypeError as e:
        raise SystemExit(f'error: cannot build {args.model!r} with {kwargs}: {e}. --drop-subnn / --coding-ratios '
                         f'apply to Coded ResNeXt models only; check --model-kwargs names.')
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f'error: cannot build {args.model!r}: {e}')
    if args.num_classes is None:
        args.num_classes = model.num_classes
    if args.grad_checkpointing:
        model.set_grad_checkpointing(enable=True)
    return model


def build_task(model: nn.Module, args, rt: Runtime, mixup_active: bool) -> ClassificationTask:
    """CodedClassificationTask (coding loss) for models with coded blocks, timm's ClassificationTask otherwise."""
    common = dict(criterion_kwargs=dict(smoothing=args.smoothing, soft_targets=mixup_active), device=rt.device,
                  verbose=rt.is_primary)
    if named_coded_blocks(model):
        return CodedClassificationTask(model, coding_loss_weight=args.coding_loss_weight, **common)
    if args.coding_loss_weight:
        _logger.warning(f'{args.model} has no coded blocks: --coding-loss-weight is ignored.')
    return ClassificationTask(model, **common)


def _resolve_lr(args, rt: Runtime) -> None:
    """timm's rule: --lr, else lr_base scaled by global batch / lr_base_size (linear for SGD, sqrt for Ada*)."""
    if args.lr is not None:
        return
    global_batch = args.batch_size * rt.world_size * args.grad_accum_steps
    scale = args.lr_base_scale or ('sqrt' if any(o in args.opt.lower() for o in ('ada', 'lamb')) else 'linear')
    ratio = global_batch / args.lr_base_size
    args.lr = args.lr_base * (ratio ** 0.5 if scale == 'sqrt' else ratio)
    if rt.is_primary:
        _logger.info(f'Learning rate ({args.lr}) from base {args.lr_base} and global batch {global_batch} '
                     f'({scale} scaling).')


def _amp(args, rt: Runtime):
    """(autocast dtype, loss scaler or None); XLA always autocasts to bfloat16."""
    dtype = torch.bfloat16 if args.amp_dtype == 'bfloat16' else torch.float16
    if rt.is_xla and dtype == torch.float16:
        if args.amp:
            _logger.warning('--amp-dtype float16 is not supported on XLA: using bfloat16 autocast.')
        dtype = torch.bfloat16
    scaler = NativeScaler(device=rt.device.type) if args.amp and dtype == torch.float16 else None
    return dtype, scaler


def _check_batches(args, rt: Runtime) -> None:
    for flag, size in (('--batch-size', args.batch_size),
                       ('--validation-batch-size', args.validation_batch_size or args.batch_size)):
        if size % rt.num_devices:
            raise SystemExit(f'error: {flag} {size} must be a multiple of the {rt.num_devices} XLA devices the batch '
                             f'is sharded over (SPMD); e.g. {flag} {rt.num_devices * max(1, size // rt.num_devices)}.')
    if (args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None) and args.batch_size % 2:
        raise SystemExit(f'error: Mixup / CutMix pair samples within a batch: --batch-size must be even, got '
                         f'{args.batch_size}.')


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run training; returns {'output_dir', 'best_metric', 'best_epoch', 'last_eval'} (on every rank)."""
    setup_default_logging()
    args, args_text = parse_args(argv)
    if args.resume:
        check_checkpoint(args.resume)  # before any set-up work: a bad --resume fails at once
    rt = setup_runtime(args)
    rt.seed(args.seed + args.rank)

    if args.dataset.lower() == FASHION_MNIST and args.mean is None and args.std is None:
        args.mean, args.std = list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)
    model = build_model(args)
    block_names: List[str] = [n for n, _ in named_coded_blocks(model)]
    data_config = resolve_data_config(vars(args), model=model, verbose=rt.is_primary)
    eval_config = resolve_data_config(vars(args), model=model, use_test_size=True)
    if rt.is_primary:
        _logger.info(f'Model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.3f} M parameters, '
                     f'{len(block_names)} coded blocks, train {data_config["input_size"]} / eval '
                     f'{eval_config["input_size"]}.')
    _check_batches(args, rt)
    _resolve_lr(args, rt)
    use_prefetcher = not args.no_prefetcher and not rt.is_xla
    mixup_collate = create_mixup(args, args.num_classes, use_prefetcher)

    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.sync_bn and rt.distributed:
        if rt.device.type != 'cuda':
            raise SystemExit('error: --sync-bn needs CUDA DDP (torch SyncBatchNorm); XLA SPMD already normalises '
                             'over the whole host batch.')
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    task = build_task(model, args, rt, mixup_collate is not None)
    amp_dtype, loss_scaler = _amp(args, rt)
    if args.model_ema and rt.is_xla:  # EMA copy made on the CPU, then moved with the task
        task.setup_ema(decay=args.model_ema_decay, use_warmup=args.model_ema_warmup)
    task.to(rt.device)
    if args.model_ema and not rt.is_xla:  # after .to(): ModelEmaV3 makes its rounding RNG on the weights' device
        task.setup_ema(decay=args.model_ema_decay, use_warmup=args.model_ema_warmup)
    optimizer = create_optimizer_v2(model, **optimizer_kwargs(cfg=args), **args.opt_kwargs)

    dataset_train, dataset_eval = create_datasets(args, _in_chans(args))
    targets = dataset_targets(dataset_train)
    if targets is not None and len(targets) and int(targets.max()) >= args.num_classes:
        raise SystemExit(f'error: the training set has class index {int(targets.max())} but the model has '
                         f'{args.num_classes} classes: pass --num-classes {int(targets.max()) + 1}.')
    cpu_loader_train, cpu_loader_eval = create_loaders(args, (dataset_train, dataset_eval), (data_config, eval_config),
                                                       rt, use_prefetcher, collate_fn=mixup_collate)
    if len(cpu_loader_train) == 0:
        raise SystemExit(f'error: the training set ({len(dataset_train)} images) is smaller than one global batch: '
                         f'lower --batch-size.')
    loader_train, loader_eval = rt.device_loader(cpu_loader_train), rt.device_loader(cpu_loader_eval)

    updates_per_epoch = (len(cpu_loader_train) + args.grad_accum_steps - 1) // args.grad_accum_steps
    lr_scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(args, decreasing_metric=args.eval_metric == 'loss'),
        updates_per_epoch=updates_per_epoch)

    start_epoch = 0
    if args.resume:
        start_epoch = resume_training(args.resume, task, optimizer=None if args.no_resume_opt else optimizer,
                                      train_state=TrainState(loss_scaler, None if args.no_resume_opt else lr_scheduler))
    if args.start_epoch is not None:
        start_epoch = args.start_epoch
    if lr_scheduler is not None and start_epoch > 0:
        if args.sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates_per_epoch)
        else:
            lr_scheduler.step(start_epoch)

    if args.torchcompile:
        task.compile(backend=args.torchcompile)
    if rt.distributed:
        task.prepare_distributed(device_ids=[rt.local_rank] if rt.device.type == 'cuda' else None)

    output_dir, saver, step_metrics = None, None, None
    if rt.is_primary:
        output_dir = get_outdir(args.output or './output/train', args.experiment or '-'.join([
            datetime.now().strftime('%Y%m%d-%H%M%S'), safe_model_name(args.model), str(data_config['input_size'][-1])]))
        saver = CheckpointSaver(
            model=model, args=args, checkpoint_dir=output_dir, recovery_dir=output_dir,
            decreasing=args.eval_metric == 'loss', max_history=args.checkpoint_hist, task=task,
            **saver_kwargs(optimizer, TrainState(loss_scaler, lr_scheduler)))
        with open(os.path.join(output_dir, 'args.yaml'), 'w') as f:
            f.write(args_text)
        if args.resume and os.path.dirname(os.path.abspath(args.resume)) == os.path.abspath(output_dir):
            saver.load_state_dict_from_checkpoint(args.resume)
        trim_summary(os.path.join(output_dir, 'summary.csv'), start_epoch)
        if args.xla_metrics and rt.is_xla:
            from .xla import StepMetrics
            step_metrics = StepMetrics(os.path.join(output_dir, 'xla_metrics.json'))
        _logger.info(f'Scheduled epochs: {num_epochs} (from epoch {start_epoch}), {updates_per_epoch} updates per '
                     f'epoch, global batch {args.batch_size * rt.world_size * args.grad_accum_steps}; output in '
                     f'{output_dir}')

    rt.end_step()  # run the pending set-up work (XLA), so no training graph carries it
    best_metric, best_epoch, eval_metrics = None, None, {}
    emas = (False, True) if task.has_ema() else (False,)  # the model, then its EMA copy
    num_updates = start_epoch * updates_per_epoch
    try:
        for epoch in range(start_epoch, num_epochs):
            rt.seed(epoch_seed(args.seed, epoch, args.rank))
            if rt.distributed and hasattr(cpu_loader_train.sampler, 'set_epoch'):
                cpu_loader_train.sampler.set_epoch(epoch)
            if mixup_collate is not None and args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
                mixup_collate.mixup_enabled = False

            train_metrics, num_updates = train_one_epoch(
                epoch, task, loader_train, optimizer, rt, args, block_names, num_updates,
                lr_scheduler=lr_scheduler, loss_scaler=loss_scaler, amp_dtype=amp_dtype, step_metrics=step_metrics)
            if rt.distributed and args.dist_bn in ('broadcast', 'reduce'):
                for ema in emas:
                    distribute_bn(task.get_trainable_module(ema=ema), rt.world_size, args.dist_bn == 'reduce')

            eval_metrics = OrderedDict()
            for ema in emas:
                metrics = validate(task.get_eval_model(ema=ema), loader_eval, rt, args, block_names, amp_dtype,
                                   step_metrics, epoch, log_suffix=' (EMA)' if ema else '')
                eval_metrics.update((f'ema_{k}' if ema else k, v) for k, v in metrics.items())
            if args.eval_metric not in eval_metrics:
                raise SystemExit(f'error: --eval-metric {args.eval_metric!r} is not one of {", ".join(eval_metrics)}.')
            latest_metric = eval_metrics[args.eval_metric]
            lrs = [g['lr'] for g in optimizer.param_groups]
            if lr_scheduler is not None:
                lr_scheduler.step(epoch + 1, latest_metric)  # the next epoch's lr, saved with the checkpoint

            if rt.is_primary:
                update_summary(epoch, train_metrics, eval_metrics, os.path.join(output_dir, 'summary.csv'),
                               lr=sum(lrs) / len(lrs))
                best_metric, best_epoch = saver.save_checkpoint(epoch, metric=latest_metric)
                if step_metrics is not None:
                    step_metrics.save()
            if rt.distributed:
                dist.barrier()
    finally:
        if step_metrics is not None:
            step_metrics.save()
    if rt.is_primary and best_metric is not None:
        _logger.info(f'*** Best metric: {best_metric} (epoch {best_epoch})')
    if rt.distributed:
        dist.destroy_process_group()
    return OrderedDict(output_dir=output_dir, best_metric=best_metric, best_epoch=best_epoch, last_eval=eval_metrics)


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except (CheckpointError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
