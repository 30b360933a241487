"""timm-coded: Coded ResNeXt (arXiv:2202.05343) as a timm plugin.

`import timm_coded` registers the models with timm (`timm.create_model('coded_resnext50_32x4d')`).
"""
from .codes import CodingScheme, generate_scheme, get_scheme
from .coded_resnext import CodedBottleneck, CodedResNeXt, SubNNDrop, parse_coding_ratio, subnn_energies

__version__ = '0.1.0'
from .loss import coded_state, coding_loss, early_decode, early_decoder_scores, unwrap_coded
