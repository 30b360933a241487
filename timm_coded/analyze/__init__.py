""" Interpretability toolkit for trained Coded ResNeXts (§4.2-4.4, Appendices C and F of the paper).

* Binary classifiers (§4.3): `extract_binary_classifier`, `binary_classifier_cost`, `evaluate_scores`.
* Early decoders (§4.4): `timm_coded.early_decode`, `EarlyExit`, `decoder_accuracy`, `agreement_table`.
* SubNN removal (§4.2): `remove_subnns`, `removal_curves`.
* Calibration (Appendix C): `fit_calibration`, `calibration_errors`, `calibration_experiment`.
* Report: `run_analysis` + `write_report`, or the CLI `python -m timm_coded.analyze --help`.

Plotting (matplotlib) is imported only when a report is written.
"""
from .bc_metrics import best_f1_threshold, binary_metrics, evaluate_scores, subsample_negatives
from .binary import (BinaryBottleneck, BinaryClassifier, binary_classifier_cost, count_flops, count_parameters,
                     extract_binary_classifier, load_binary_classifier, save_binary_classifier)
from .calibration import (calibration_errors, calibration_experiment, errors_from_bins, fit_calibration,
                          reliability_bins, scaled_log_probs, stratified_split)
from .decoders import EarlyExit, agreement_table, block_energies, decoder_accuracy
from .removal import removal_curves, removal_masks
from .report import collect_outputs, run_analysis, write_report
from .subnns import active_subnns, codeword_masks, remove_subnns
