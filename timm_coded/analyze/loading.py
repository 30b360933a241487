""" The data an analysis needs: the eval transform the model was trained with (timm's `resolve_data_config` on
the train.py args a `CheckpointSaver` stores, else the model's `pretrained_cfg`) and the datasets (Fashion-MNIST,
an out-of-distribution set, or any timm dataset / image folder).
"""
import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.utils.data
from PIL import Image

from timm.data import create_dataset, create_transform, resolve_data_config

from ..data import FashionMNIST, Subset, balanced_subset, dataset_targets

__all__ = ['resolve_eval_config', 'build_dataset', 'subsample', 'DigitsOOD',
           'FASHION_MNIST_NAMES', 'OOD_DIGITS_NAMES']

FASHION_MNIST_NAMES = ('fashion_mnist', 'fashion-mnist', 'fashionmnist')
OOD_DIGITS_NAMES = ('digits', 'uci_digits')
_ARG_KEYS = ('input_size', 'img_size', 'in_chans', 'mean', 'std', 'crop_pct', 'crop_mode', 'interpolation')


def resolve_eval_config(model: nn.Module, train_args: Optional[Dict[str, Any]] = None,
                        overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Eval data config (input_size, mean, std, crop, interpolation): overrides > training args > pretrained_cfg.

    The channel count always follows the model; a 3-value mean / std for a 1-channel model is averaged (with a
    warning), as there is no other way to apply it.
    """
    args = {k: v for k, v in (train_args or {}).items() if k in _ARG_KEYS and v is not None}
    args.update({k: v for k, v in (overrides or {}).items() if v is not None})
    in_chans = int(getattr(model, 'in_chans', 3))
    args['in_chans'] = in_chans
    if 'input_size' in args:
        args['input_size'] = (in_chans, *tuple(args['input_size'])[-2:])
    cfg = resolve_data_config(args, model=model)
    cfg['input_size'] = (in_chans, *cfg['input_size'][-2:])
    for key in ('mean', 'std'):
        if len(cfg[key]) != in_chans:
            if in_chans != 1:
                raise ValueError(f'Normalisation {key} {cfg[key]} does not fit a {in_chans}-channel model: pass '
                                 f'--{key} with {in_chans} values.')
            warnings.warn(f'Averaging the 3-channel {key} {tuple(cfg[key])} for a 1-channel model; pass --{key} '
                          f'with the value used in training if it differs.')
            cfg[key] = (float(np.mean(cfg[key])),)
    return cfg


class DigitsOOD(torch.utils.data.Dataset):
    """Out-of-distribution set for Fashion-MNIST: the 1,797 real handwritten digits (UCI ML optical recognition
    of handwritten digits) that scikit-learn ships, 8x8 grey levels 0..16 resized to 28x28 like MNIST; target -1."""

    def __init__(self, transform=None, in_chans: int = 3, size: int = 28):
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ImportError('The digits OOD set needs scikit-learn: pip install "timm-coded[plots]" '
                              '(or pip install scikit-learn).') from e
        small = (load_digits().images * (255. / 16.)).round().astype(np.uint8)  # (1797, 8, 8) from 0..16
        mode = 'RGB' if in_chans == 3 else 'L'
        self.images = [Image.fromarray(im, 'L').resize((size, size), Image.BILINEAR).convert(mode) for im in small]
        self.transform = transform
        self.targets = np.full(len(self.images), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        img = self.images[index]
        return (img if self.transform is None else self.transform(img)), -1


def build_dataset(name: str, split: str, data_dir: Optional[str] = None, data_config: Optional[Dict] = None,
                  in_chans: int = 3) -> torch.utils.data.Dataset:
    """The dataset `name` with the eval transform of `data_config`: 'fashion_mnist' (Debian's dataset-fashion-mnist
    or `data_dir`), 'digits' (OOD, scikit-learn), or any timm `create_dataset` name: '' / 'folder' for an
    ImageFolder tree under `data_dir` (train/ and validation/ or val/), 'torch/cifar100', 'hfds/...'.
    """
    transform = create_transform(**data_config, is_training=False) if data_config else None
    key = name.lower()
    if key in FASHION_MNIST_NAMES:
        return FashionMNIST(root=data_dir, split='train' if split == 'train' else 'test', transform=transform,
                            in_chans=in_chans)
    if key in OOD_DIGITS_NAMES:
        return DigitsOOD(transform=transform, in_chans=in_chans)
    if data_dir is None and not key.startswith(('hfds/', 'hfids/')):
        raise ValueError(f'Dataset {name!r} needs --data-dir (the dataset folder).')
    ds = create_dataset('' if key == 'folder' else name, root=data_dir, split=split,
                        input_img_mode='L' if in_chans == 1 else 'RGB')
    if hasattr(ds, 'transform'):
        ds.transform = transform
    return ds


def subsample(ds: torch.utils.data.Dataset, max_samples: Optional[int], seed: int = 0) -> torch.utils.data.Dataset:
    """At most `max_samples` samples: class-balanced where the dataset lists its classes, else at random."""
    if not max_samples or max_samples >= len(ds):
        return ds
    targets = dataset_targets(ds)
    if targets is not None and (targets >= 0).all():
        classes = np.unique(targets)
        return balanced_subset(ds, min(max(1, max_samples // len(classes)), int(np.bincount(targets)[classes].min())),
                               seed)
    return Subset(ds, np.sort(np.random.default_rng(seed).choice(len(ds), max_samples, replace=False)))
