""" Built-in coding schemes, frozen as JSON in `schemes/`, and `get_scheme`, the lookup every model uses.

Table 4 of the paper for CIFAR-10 (r = 5/10 and 3/10), generated schemes for CIFAR-100 and ImageNet-1k; each
file records the generator arguments that reproduce it, so weights are never paired with another codebook after
a change of the generator (the tests regenerate them).
"""
import functools
import json
from typing import Dict, List, Optional

from .generate import generate_scheme
from .scheme import CodingScheme

CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
# Table 4 of the paper (CIFAR-10, class order of torchvision's CIFAR10): r = 5/10 and r = 3/10.
_TABLE4 = {
    'cifar10_r5_10': ('1010100011', '0101010101', '1101100010', '0011001101', '1010010101',
                      '1001001110', '1011101000', '0100011110', '0110111000', '0100110011'),
    'cifar10_r3_10': ('1001001000', '0110001000', '1010000001', '0000001110', '0001010100',
                      '0010100100', '0000110010', '0100010001', '0001100001', '1100000010'),
}
# Generated built-ins: name -> generate_scheme arguments (recorded in the JSON file, re-checked by tests).
_GENERATED = {
    'cifar100_r8_20': dict(num_classes=100, num_subnns=20, num_active=8, min_distance=8, seed=0),
    'cifar100_r4_20': dict(num_classes=100, num_subnns=20, num_active=4, min_distance=4, seed=0),
    'imagenet_r16_32': dict(num_classes=1000, num_subnns=32, num_active=16, min_distance=12, seed=0),
    'imagenet_r8_32': dict(num_classes=1000, num_subnns=32, num_active=8, min_distance=6, seed=0),
}


def _write_builtins(directory: Optional[str] = None) -> None:
    """Regenerate the frozen files in `schemes/` (``timm_coded.codes.builtin._write_builtins()``)."""
    import pathlib
    out = pathlib.Path(directory or pathlib.Path(__file__).with_name('schemes'))
    out.mkdir(parents=True, exist_ok=True)
    for name in (*_TABLE4, *_GENERATED):
        if name in _TABLE4:
            scheme = CodingScheme.from_codewords(_TABLE4[name], name, CIFAR10_CLASSES)
            origin = dict(source='Table 4 of arXiv:2202.05343 (Coded ResNeXt)', generator=None)
        else:
            scheme = CodingScheme.from_codewords(generate_scheme(**_GENERATED[name]).codewords, name)
            origin = dict(source='timm_coded.codes.generate_scheme', generator=_GENERATED[name])
        record = dict(scheme.to_json(), **origin, quality=scheme.quality(), fingerprint=scheme.fingerprint())
        (out / f'{name}.json').write_text(json.dumps(record, indent=1) + '\n', encoding='utf-8')


def _schemes_dir():
    from importlib import resources
    return resources.files(__package__ or 'timm_coded').joinpath('schemes')


@functools.lru_cache(maxsize=None)
def _builtins() -> Dict[str, CodingScheme]:
    out = {}
    for entry in sorted(_schemes_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith('.json'):
            data = json.loads(entry.read_text(encoding='utf-8'))
            scheme = CodingScheme.from_json(data)
            if data.get('fingerprint') not in (None, scheme.fingerprint()):
                raise ValueError(f'Built-in scheme file {entry.name} is corrupt: fingerprint mismatch.')
            out[scheme.name] = scheme
    return out


def builtin_names() -> List[str]:
    """Names of the frozen built-in schemes."""
    return sorted(_builtins())


@functools.lru_cache(maxsize=None)
def get_scheme(num_classes: int, num_subnns: int, num_active: int) -> CodingScheme:
    """The scheme a model uses for (K, N, N_act): built-in if one matches, else generated (cached)."""
    k, n, a = int(num_classes), int(num_subnns), int(num_active)
    return next((s for s in _builtins().values() if (s.num_classes, s.num_subnns, s.num_active) == (k, n, a)),
                None) or generate_scheme(k, n, a)
