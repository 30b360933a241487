""" Evaluating binary classifiers (§4.3, Appendix F.2): F1-optimal threshold on training data, then precision,
recall and F1 on validation data, on out-of-distribution negatives, and with negatives subsampled to 9 per
positive (the paper's protocol for ImageNet and CIFAR-100).
"""
from typing import Dict, Optional

import numpy as np

__all__ = ['best_f1_threshold', 'binary_metrics', 'subsample_negatives', 'evaluate_scores']


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """Threshold t maximising F1 of the rule `score >= t` (t halfway between neighbouring distinct scores)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    num_pos = int(positive.sum())
    if num_pos == 0 or num_pos == len(positive):
        raise ValueError(f'Choosing a threshold needs positives and negatives; got {num_pos} positives out of '
                         f'{len(positive)} samples. Use more training samples (--max-samples) for this class.')
    order = np.argsort(-scores, kind='stable')
    s, p = scores[order], positive[order]
    tp = np.cumsum(p)  # cutting after sample i predicts i + 1 positives
    last = np.r_[s[1:] != s[:-1], True]  # end of each run of equal scores: a valid cut
    f1 = np.where(last, 2 * tp / (np.arange(1, len(p) + 1) + num_pos), -1.)
    i = int(np.argmax(f1))
    return float(s[i] if i + 1 == len(s) else (s[i] + s[i + 1]) / 2)


def binary_metrics(scores: np.ndarray, positive: np.ndarray, threshold: float) -> Dict[str, float]:
    """Precision, recall, F1 and the confusion counts of `score >= threshold` (precision 0 with no predicted
    positive)."""
    pred = np.asarray(scores) >= threshold
    positive = np.asarray(positive, dtype=bool)
    tp = int((pred & positive).sum())
    fp = int((pred & ~positive).sum())
    fn = int((~pred & positive).sum())
    tn = int((~pred & ~positive).sum())
    precision = tp / (tp + fp) if tp + fp else 0.
    recall = tp / (tp + fn) if tp + fn else 0.
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.
    return {'precision': precision, 'recall': recall, 'f1': f1, 'tp': tp, 'fp': fp, 'fn': fn, 'tn': tn}


def subsample_negatives(positive: np.ndarray, per_positive: int = 9, seed: int = 0) -> np.ndarray:
    """Indices of all positives and `per_positive` random negatives per positive (all if fewer exist)."""
    positive = np.asarray(positive, dtype=bool)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    n = min(len(neg), per_positive * len(pos))
    neg = np.random.default_rng(seed).choice(neg, n, replace=False)
    return np.sort(np.concatenate([pos, neg]))


def evaluate_scores(
        train_scores: np.ndarray,
        train_positive: np.ndarray,
        val_scores: np.ndarray,
        val_positive: np.ndarray,
        ood_scores: Optional[np.ndarray] = None,
        per_positive: int = 9,
        seed: int = 0,
) -> Dict[str, Dict[str, float]]:
    """Threshold from training scores; metrics on validation (all negatives, 9:1 negatives) and, with OOD scores,
    on the validation positives against the OOD samples as negatives (Fig. 2b)."""
    threshold = best_f1_threshold(train_scores, train_positive)
    val_positive = np.asarray(val_positive, dtype=bool)
    out = {'threshold': threshold,
           'train': binary_metrics(train_scores, train_positive, threshold),
           'val': binary_metrics(val_scores, val_positive, threshold)}
    keep = subsample_negatives(val_positive, per_positive, seed)
    out[f'val_1to{per_positive}'] = binary_metrics(val_scores[keep], val_positive[keep], threshold)
    if ood_scores is not None:
        pos_scores = val_scores[val_positive]
        labels = np.arange(len(pos_scores) + len(ood_scores)) < len(pos_scores)
        out['ood'] = binary_metrics(np.concatenate([pos_scores, ood_scores]), labels, threshold)
    return out
