from .codebooks import Codebooks, RatioSpec, parse_coding_ratio, parse_coding_ratios, parse_ratio, ratio_key
from .coded_block import CodedBlock, get_codebooks, named_coded_blocks, unwrap
from .subnn_coding import SubNNDrop, normalize_subnns, subnn_coding_reference, subnn_energies, subnn_outputs
