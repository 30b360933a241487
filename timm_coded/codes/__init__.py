""" Coding schemes of Coded ResNeXt (§3.2.1, App. A): the scheme type, the generator, the frozen built-ins.

* `scheme.py`: `CodingScheme`, a validated (K, N) table (rule A) with its quality (rules B, C).
* `generate.py`: Algorithm 1 of the paper (`algorithm1`) and `generate_scheme`, its scalable form, whose
  improvements are separate steps: `pools.py`, `balance.py`, `tabu.py`.
* `builtin.py`: Table 4 and the generated CIFAR-100 / ImageNet schemes, frozen in `schemes/`; `get_scheme`.
* ``python -m timm_coded.codes``: the command line.
"""
from .builtin import builtin_names, get_scheme
from .generate import algorithm1, generate_scheme
from .scheme import CodingScheme

__all__ = ['CodingScheme', 'algorithm1', 'generate_scheme', 'get_scheme', 'builtin_names', 'BUILTIN_SCHEMES']


def __getattr__(name: str):  # BUILTIN_SCHEMES is read from disk on first access only
    if name == 'BUILTIN_SCHEMES':
        from .builtin import _builtins
        return dict(_builtins())
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
