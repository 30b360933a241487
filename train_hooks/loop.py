""" Training and evaluation loops of `train_hooks.train`.

Meters are sums on the device, read on the host only when a line is logged (on XLA through a step closure), so a
step never waits for the device. With coded blocks every step logs the class loss, the coding loss (total and per
coded block) and the early decoders' accuracy per block.
"""
import logging
import time
from collections import OrderedDict
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm_coded.loss import early_decode

from .device import Runtime

_logger = logging.getLogger(__name__)

__all__ = ['TrainMeters', 'CodedEvaluator', 'train_one_epoch', 'validate']


def _dec_acc(metrics: Dict[str, float], block_names: Sequence[str]) -> str:
    accs = ' '.join(f'{metrics[f"dec_acc_{n}"]:.1f}' for n in block_names)
    return f'  dec-acc [{accs}]%' if accs else ''


class TrainMeters:
    """Running sums of the step results on the device: loss, and with coded blocks class_loss, coding_loss,
    coding_loss_<block>, dec_acc_<block> (%)."""

    def __init__(self, block_names: Sequence[str], device: torch.device):
        self.block_names = list(block_names)
        self.names = ['loss'] + (['class_loss', 'coding_loss'] + [f'coding_loss_{n}' for n in self.block_names]
                                 + [f'dec_acc_{n}' for n in self.block_names] if self.block_names else [])
        self.sums = torch.zeros(len(self.names), dtype=torch.float32, device=device)
        self.count = 0

    @torch.no_grad()
    def update(self, result: Dict[str, torch.Tensor], target: torch.Tensor, batch_size: int) -> None:
        parts = [result['loss'].detach().float().reshape(1)]
        if self.block_names:
            hard = target.argmax(dim=1) if target.dim() == 2 else target  # dominant class of mixup targets
            parts += [result['class_loss'].detach().float().reshape(1),
                      result['coding_loss'].detach().float().reshape(1), result['coding_losses'].float(),
                      (result['decoder_preds'] == hard[None]).float().mean(dim=1) * 100.]
        self.sums += torch.cat(parts) * batch_size
        self.count += batch_size

    def averages(self, sums: torch.Tensor, count: int) -> Dict[str, float]:
        return OrderedDict((n, float(s) / max(count, 1)) for n, s in zip(self.names, sums.tolist()))

    def format(self, metrics: Dict[str, float]) -> str:
        """'loss 2.31  class 2.10  coding 0.105 [...]  dec-acc [...]%' for one log line."""
        text = f'loss {metrics["loss"]:.4f}'
        if self.block_names:
            blocks = ' '.join(f'{metrics[f"coding_loss_{n}"]:.4f}' for n in self.block_names)
            text += f'  class {metrics["class_loss"]:.4f}  coding {metrics["coding_loss"]:.4f} [{blocks}]'
        return text + _dec_acc(metrics, self.block_names)


def _to_device(input: torch.Tensor, target: torch.Tensor, rt: Runtime, args) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch on the device (a no-op for the prefetcher's and XLA's), in channels_last if asked."""
    input, target = input.to(rt.device), target.to(rt.device)
    return input.contiguous(memory_format=torch.channels_last) if args.channels_last else input, target


def train_one_epoch(
        epoch: int, task: nn.Module, loader, optimizer: torch.optim.Optimizer, rt: Runtime, args,
        block_names: Sequence[str], num_updates: int, lr_scheduler=None, loss_scaler=None,
        amp_dtype: torch.dtype = torch.bfloat16, step_metrics=None,
) -> Tuple[Dict[str, float], int]:
    """One epoch over `loader`; returns (epoch averages of the meters, number of optimizer updates so far)."""
    model = task.get_trainable_module()
    model.train()
    accum, num_batches = args.grad_accum_steps, len(loader)
    last_accum = num_batches % accum or accum
    meters = TrainMeters(block_names, rt.device)
    rt.end_step()  # materialise the zeroed meters, so every epoch's first step runs an already compiled graph
    global_batch = args.batch_size * rt.world_size * accum
    start = last = time.time()
    prev = (torch.zeros(len(meters.names)), 0, -1)  # sums, count, batch of the previous log line

    def log(batch_idx: int, count: int, lr: float, sums: torch.Tensor) -> None:
        nonlocal prev, last
        now, done = time.time(), batch_idx + 1
        interval = meters.averages(sums - prev[0], count - prev[1])
        rate = (batch_idx - prev[2]) * global_batch / max(now - last, 1e-9)
        if rt.is_primary:
            _logger.info(f'Train: {epoch} [{batch_idx:>5d}/{num_batches} ({100. * done / num_batches:>3.0f}%)]  '
                         f'{meters.format(interval)}  lr {lr:.3e}  {rate:>7.3g} img/s  eta '
                         f'{(now - start) / done * (num_batches - done) / 60:.1f} min')
        prev, last = (sums.clone(), count, batch_idx), now  # a copy: on one CPU process `sums` is the meters' own

    optimizer.zero_grad(set_to_none=True)
    for batch_idx, (input, target) in enumerate(loader):
        last_batch = batch_idx == num_batches - 1
        need_update = last_batch or (batch_idx + 1) % accum == 0
        group_steps = last_accum if batch_idx >= num_batches - last_accum else accum
        input, target = _to_device(input, target, rt, args)
        with task.no_sync() if rt.distributed and not need_update else nullcontext():
            with torch.autocast(rt.device.type, dtype=amp_dtype, enabled=args.amp):
                result = task(input, target)
            loss = result['loss'] / group_steps if group_steps > 1 else result['loss']
            if loss_scaler is not None:
                loss_scaler(loss, optimizer, parameters=model.parameters(), need_update=need_update)
            else:
                loss.backward()
                if need_update:
                    optimizer.step()
        if need_update:
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            task.update_ema(step=num_updates)
            if lr_scheduler is not None:
                lr_scheduler.step_update(num_updates=num_updates)
        meters.update(result, target, input.shape[0])
        logged = last_batch or batch_idx % args.log_interval == 0
        if logged:
            lr, count = optimizer.param_groups[0]['lr'], meters.count * rt.world_size
            rt.on_host(lambda s, b=batch_idx, c=count, lr=lr: log(b, c, lr, s), [rt.all_reduce_sum(meters.sums)])
        rt.end_step()
        if step_metrics is not None:
            step_metrics.record('train', epoch, batch_idx, logged)
    rt.end_step()
    metrics = meters.averages(rt.all_reduce_sum(meters.sums).detach().cpu(), meters.count * rt.world_size)
    if rt.is_primary:
        _logger.info(f'Train: {epoch} done in {(time.time() - start) / 60:.2f} min: {meters.format(metrics)}')
    return metrics, num_updates


class CodedEvaluator:
    """Top-1 / top-5, cross-entropy and early-decoder accuracy per coded block, summed on the device.
    Targets -1 mark padding (`train_hooks.data.PaddedDataset`) and are ignored, so batches keep one shape."""

    def __init__(self, device: torch.device, block_names: Sequence[str]):
        self.block_names = list(block_names)
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        self.counts = torch.zeros(3 + len(self.block_names), dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor,
               decoder_preds: Optional[List[torch.Tensor]] = None) -> None:
        output, valid, tgt = output.float(), target >= 0, target.clamp(min=0)
        self.loss_sum += F.cross_entropy(output, target, ignore_index=-1, reduction='sum')
        correct = output.topk(min(5, output.shape[-1]), dim=-1).indices.eq(tgt[:, None]) & valid[:, None]
        parts = [valid.sum(), correct[:, 0].sum(), correct.any(dim=-1).sum()]
        self.counts += torch.stack(parts + [(p.eq(tgt) & valid).sum() for p in (decoder_preds or [])])

    def compute(self, rt: Runtime) -> Dict[str, float]:
        loss_sum = rt.all_reduce_sum(self.loss_sum).detach().cpu().item()
        counts = rt.all_reduce_sum(self.counts).detach().cpu().tolist()
        n = max(counts[0], 1)
        metrics = OrderedDict(loss=loss_sum / n, top1=100. * counts[1] / n, top5=100. * counts[2] / n)
        metrics.update((f'dec_acc_{name}', 100. * c / n) for name, c in zip(self.block_names, counts[3:]))
        metrics['samples'] = counts[0]
        return metrics


@torch.no_grad()
def validate(model: nn.Module, loader, rt: Runtime, args, block_names: Sequence[str],
             amp_dtype: torch.dtype = torch.bfloat16, step_metrics=None, epoch: int = 0,
             log_suffix: str = '') -> Dict[str, float]:
    """Evaluate `model` over `loader` (padded batches); the metrics are read on the host once, at the end."""
    model.eval()
    evaluator = CodedEvaluator(rt.device, block_names)
    rt.end_step()
    start = time.time()
    for batch_idx, (input, target) in enumerate(loader):
        input, target = _to_device(input, target, rt, args)
        with torch.autocast(rt.device.type, dtype=amp_dtype, enabled=args.amp):
            output = model(input)
        output = output[0] if isinstance(output, (tuple, list)) else output
        evaluator.update(output, target, [s.argmax(dim=1) for s in early_decode(model)] if block_names else None)
        rt.end_step()
        if step_metrics is not None:
            step_metrics.record('eval', epoch, batch_idx)
        if rt.is_primary and (batch_idx == len(loader) - 1 or batch_idx % args.log_interval == 0):
            _logger.info(f'Test{log_suffix}: [{batch_idx:>5d}/{len(loader)}]  {time.time() - start:.1f} s')
    metrics = evaluator.compute(rt)
    if rt.is_primary:
        _logger.info(f'Test{log_suffix}: {metrics["samples"]} images  loss {metrics["loss"]:.4f}  top1 '
                     f'{metrics["top1"]:.2f}  top5 {metrics["top5"]:.2f}{_dec_acc(metrics, block_names)}')
    del metrics['samples']
    return metrics
