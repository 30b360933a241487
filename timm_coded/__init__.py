"""timm-coded: Coded ResNeXt (arXiv:2202.05343) as a timm plugin.

`import timm_coded` registers the models with timm (`timm.create_model('coded_resnext50_32x4d')`).
"""
from .coded_resnext import CodedBottleneck, CodedResNeXt, SubNNDrop, parse_coding_ratio, subnn_energies
from .loss import coded_state, coding_loss, early_decode, early_decoder_scores, unwrap_coded

__version__ = '0.1.0'
_LAZY_CODES = ('CodingScheme', 'generate_scheme', 'get_scheme')


def __getattr__(name: str):
    # the coding-scheme names load on first use, so `python -m timm_coded.codes` imports that module once
    if name in _LAZY_CODES:
        from . import codes
        return getattr(codes, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


from .analyze import extract_binary_classifier  # noqa: E402  (interpretability toolkit, §4.3)
