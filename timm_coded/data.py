""" Datasets: the normalisation constants of the model cfgs, and Fashion-MNIST read offline from IDX files
(Debian's `dataset-fashion-mnist` package by default).

Fashion-MNIST images are 28x28 grayscale; `in_chans=3` (default) replicates the gray channel so ImageNet/CIFAR-style
3-channel models and timm transforms work unchanged, `in_chans=1` keeps one channel.
"""
import gzip
import os
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch.utils.data
from PIL import Image

__all__ = ['FashionMNIST', 'FASHION_MNIST_CLASSES', 'FASHION_MNIST_DIR', 'FASHION_MNIST_MEAN', 'FASHION_MNIST_STD',
           'CIFAR10_MEAN', 'CIFAR10_STD', 'CIFAR100_MEAN', 'CIFAR100_STD', 'balanced_indices', 'dataset_targets',
           'find_fashion_mnist', 'read_idx']

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
FASHION_MNIST_MEAN = (0.2860,)  # of the 60k training images, pixel / 255 (one gray channel)
FASHION_MNIST_STD = (0.3530,)
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
                         'Bag', 'Ankle boot')
FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'  # Debian's dataset-fashion-mnist
_FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
          'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a numpy array."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b'\x00\x00\x08':
        raise ValueError(f'{path} is not an unsigned-byte IDX file (bad magic number): re-download it.')
    dims = tuple(int(d) for d in np.frombuffer(data, dtype='>u4', count=data[3], offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims))
    if body.size != int(np.prod(dims)):
        raise ValueError(f'{path} is truncated: header says {dims}, found {body.size} bytes of data.')
    return body.reshape(dims)


def _locate(root: str, stem: str) -> Optional[str]:
    for sub in ('', 'raw', os.path.join('FashionMNIST', 'raw')):
        for ext in ('.gz', ''):
            path = os.path.join(root, sub, stem + ext)
            if os.path.isfile(path):
                return path
    return None


def find_fashion_mnist(root: Optional[str] = None) -> str:
    """Folder holding the Fashion-MNIST IDX files: `root` if given, else the Debian package's folder."""
    folder = root or FASHION_MNIST_DIR
    if all(_locate(folder, s) for pair in _FILES.values() for s in pair):
        return folder
    raise FileNotFoundError(f'Fashion-MNIST IDX files not found in {folder}. Install them with `apt-get install '
                            f'dataset-fashion-mnist` (Debian/Ubuntu, files in {FASHION_MNIST_DIR}), or pass --data-dir '
                            f'with the four train-/t10k- *-ubyte(.gz) files, e.g. from '
                            f'torchvision.datasets.FashionMNIST(root, download=True).')


class FashionMNIST(torch.utils.data.Dataset):
    """Fashion-MNIST split ('train': 60k, 'test' / 'validation' / 'val': 10k) as (PIL image, label) pairs, usable
    with timm's `create_loader` (which sets `transform`); `indices` selects a subset, `in_chans` as the module's.
    """

    def __init__(
            self,
            root: Optional[str] = None,
            split: str = 'train',
            transform: Optional[Callable] = None,
            indices: Optional[Sequence[int]] = None,
            in_chans: int = 3,
    ):
        key = 'train' if split == 'train' else 'test' if split in ('test', 'val', 'validation') else None
        if key is None:
            raise ValueError(f"Fashion-MNIST split must be 'train' or 'test'/'validation', got {split!r}.")
        if in_chans not in (1, 3):
            raise ValueError(f'Fashion-MNIST in_chans must be 1 (grayscale) or 3 (replicated), got {in_chans}.')
        folder = find_fashion_mnist(root)
        images, labels = (read_idx(_locate(folder, s)) for s in _FILES[key])
        if indices is not None:
            idx = np.asarray(indices, dtype=np.int64)
            images, labels = images[idx], labels[idx]
        self.images = images
        self.targets = labels.astype(np.int64)
        self.transform = transform
        self.in_chans = in_chans
        self.classes = FASHION_MNIST_CLASSES

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Tuple[object, int]:
        img = Image.fromarray(self.images[index], mode='L')
        if self.in_chans == 3:
            img = img.convert('RGB')
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index])


def balanced_indices(targets: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """`per_class` random indices of every class, sorted: a class-balanced subset."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(targets == c), per_class, replace=False) for c in np.unique(targets)]
    return np.sort(np.concatenate(picks))


class Subset(torch.utils.data.Subset):
    """torch's Subset with the subset's `targets`, whose `transform` (set by timm's loaders) is the dataset's."""

    def __init__(self, dataset: torch.utils.data.Dataset, indices: Sequence[int]):
        super().__init__(dataset, [int(i) for i in indices])
        targets = dataset_targets(dataset)
        self.targets = targets[np.asarray(self.indices, dtype=np.int64)] if targets is not None else None

    @property
    def transform(self) -> Optional[Callable]:
        return getattr(self.dataset, 'transform', None)

    @transform.setter
    def transform(self, value: Optional[Callable]) -> None:
        self.dataset.transform = value


def balanced_subset(dataset: torch.utils.data.Dataset, per_class: int, seed: int = 0) -> Subset:
    """`per_class` random samples of every class (a clear error where the dataset cannot give them)."""
    targets = dataset_targets(dataset)
    if targets is None:
        raise ValueError(f'A class-balanced subset needs a dataset that lists its targets (image folders, torch/..., '
                         f'fashion_mnist); {type(dataset).__name__} does not.')
    smallest = int(np.bincount(targets)[np.unique(targets)].min())
    if per_class > smallest:
        raise ValueError(f'{per_class} images per class exceeds the smallest class ({smallest} images).')
    return Subset(dataset, balanced_indices(targets, per_class, seed))


def dataset_targets(dataset: torch.utils.data.Dataset) -> Optional[np.ndarray]:
    """Class index of every sample without loading images, where the dataset exposes it (timm readers too)."""
    targets = getattr(dataset, 'targets', None)
    if targets is None:
        samples = getattr(getattr(dataset, 'reader', None), 'samples', None)
        targets = [s[1] for s in samples] if samples is not None else None
    return None if targets is None else np.asarray(targets, dtype=np.int64)
