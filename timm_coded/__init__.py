"""timm-coded: Coded ResNeXt (arXiv:2202.05343) as a timm plugin.

`import timm_coded` registers the models with timm (`timm.create_model('coded_resnext50_32x4d')`).
"""
from .codes import CodingScheme, generate_scheme, get_scheme
from .layers import named_coded_blocks, normalize_subnns, subnn_coding_reference, subnn_energies
from .loss import coded_state, coding_loss, early_decode, early_decoder_scores
from .models import CodedBottleneck, CodedResNeXt

__version__ = '0.2.0'

from .analyze import extract_binary_classifier  # noqa: E402  (interpretability toolkit, §4.3)
