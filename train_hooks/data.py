""" Datasets, transforms and loaders of `train_hooks.train`, built from timm.data: `create_dataset`'s datasets plus
`fashion_mnist` (offline, Debian's `dataset-fashion-mnist`), the CIFAR pad-and-crop in timm's train transform, and
evaluation sets padded to whole batches with target -1 (`PaddedDataset`): every evaluation batch has one shape (XLA)
and distributed ranks see disjoint real samples; the evaluator ignores target -1.
"""
import math
import os
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.utils.data
from torchvision import transforms

from timm.data import FastCollateMixup, Mixup, create_dataset, create_loader

from timm_coded.data import FashionMNIST, Subset, balanced_subset

__all__ = ['FASHION_MNIST', 'PaddedDataset', 'MixupCollate', 'create_datasets', 'create_mixup', 'create_loaders']

FASHION_MNIST = 'fashion_mnist'
PAD_TARGET = -1


class PaddedDataset(torch.utils.data.Dataset):
    """A dataset padded to a multiple of `multiple` samples; padding repeats the last sample with target -1."""
    transform = Subset.transform  # timm's create_loader sets the transform: it goes to the wrapped dataset

    def __init__(self, dataset: torch.utils.data.Dataset, multiple: int):
        self.dataset = dataset
        self.num_real = len(dataset)
        if self.num_real == 0:
            raise ValueError('The evaluation dataset is empty: check --data-dir and --val-split.')
        self.num_padded = math.ceil(self.num_real / multiple) * multiple

    def __len__(self) -> int:
        return self.num_padded

    def __getitem__(self, index: int) -> Tuple[Any, int]:
        if index < self.num_real:
            return self.dataset[index]
        image, _ = self.dataset[self.num_real - 1]
        return image, PAD_TARGET


class MixupCollate(Mixup):
    """default_collate, then timm's Mixup / CutMix on the CPU batch (loaders without timm's prefetcher)."""

    def __call__(self, batch):
        return super().__call__(*torch.utils.data.default_collate(batch))


def create_datasets(args, in_chans: int) -> Tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """Train and evaluation datasets of `args.dataset` (optionally class-balanced subsets)."""
    if args.data_dir and not os.path.isdir(args.data_dir) and not args.dataset_download:
        raise FileNotFoundError(f'--data-dir {args.data_dir}: no such folder. Point it at the dataset\'s root folder'
                                + (' (or leave it out for Debian\'s dataset-fashion-mnist).'
                                   if args.dataset.lower() == FASHION_MNIST else '.'))
    if args.dataset.lower() == FASHION_MNIST:
        train = FashionMNIST(args.data_dir or None, split=args.train_split, in_chans=in_chans)
        val = FashionMNIST(args.data_dir or None, split=args.val_split, in_chans=in_chans)
    else:
        if not args.data_dir and not args.dataset.lower().startswith(('hfds/', 'hfids/', 'tfds/', 'wds/')):
            raise ValueError(f'--data-dir is required for dataset {args.dataset or "(image folder)"!r}.')
        common = dict(root=args.data_dir, download=args.dataset_download, class_map=args.class_map,
                      batch_size=args.batch_size, seed=args.seed,
                      input_img_mode=args.input_img_mode or ('L' if in_chans == 1 else 'RGB'))
        train = create_dataset(args.dataset, split=args.train_split, is_training=True, **common)
        val = create_dataset(args.dataset, split=args.val_split, is_training=False, **common)
    if args.train_per_class:
        train = balanced_subset(train, args.train_per_class, args.seed)
    if args.val_per_class:
        val = balanced_subset(val, args.val_per_class, args.seed + 1)
    return train, val


def create_mixup(args, num_classes: int, use_prefetcher: bool) -> Optional[Callable]:
    """timm's Mixup / CutMix as a collate function (FastCollateMixup with the prefetcher), or None."""
    if not (args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax is not None):
        return None
    return (FastCollateMixup if use_prefetcher else MixupCollate)(
        mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
        prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
        label_smoothing=args.smoothing, num_classes=num_classes)


def create_loaders(args, datasets: Tuple[torch.utils.data.Dataset, torch.utils.data.Dataset],
                   data_configs: Tuple[Dict[str, Any], Dict[str, Any]], rt, use_prefetcher: bool,
                   collate_fn: Optional[Callable] = None):
    """timm's create_loader for training (drop_last, workers re-created each epoch so the RNG of an epoch depends
    only on the seed set at its start) and for evaluation (the dataset padded to whole batches on every rank)."""
    (train, val), (train_config, eval_config) = datasets, data_configs
    common = dict(num_workers=args.workers, distributed=rt.distributed, pin_memory=args.pin_mem, device=rt.device,
                  use_prefetcher=use_prefetcher)
    interpolation = (not args.no_aug and args.train_interpolation) or train_config['interpolation']
    loader_train = create_loader(
        train, input_size=train_config['input_size'], batch_size=args.batch_size, is_training=True,
        no_aug=args.no_aug, re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
        train_crop_mode=args.train_crop_mode, scale=args.scale, ratio=args.ratio, hflip=args.hflip, vflip=args.vflip,
        color_jitter=args.color_jitter, auto_augment=args.aa, interpolation=interpolation,
        mean=train_config['mean'], std=train_config['std'], collate_fn=collate_fn, persistent_workers=False, **common)
    if args.pad_crop and not args.no_aug:  # CIFAR crop (pad, random crop) in place of timm's random-resized crop
        train.transform.transforms[0] = transforms.RandomCrop(train_config['input_size'][-1], padding=args.pad_crop)
    batch_size = args.validation_batch_size or args.batch_size
    loader_eval = create_loader(
        PaddedDataset(val, batch_size * rt.world_size), input_size=eval_config['input_size'], batch_size=batch_size,
        is_training=False, interpolation=eval_config['interpolation'], crop_pct=eval_config['crop_pct'],
        mean=eval_config['mean'], std=eval_config['std'], **common)
    return loader_train, loader_eval
