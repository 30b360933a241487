""" Confidence calibration with early decoders (Appendix C): h_T (Eq. 10), h_aug (Eq. 11), ECE and MCE.

h_T(z) = softmax(z / T); h_aug(z) = softmax(z / T_aug), T_aug = T (1 + sum_i 1(e_i = y_hat) tau_i), where e_i is
the i-th early decoder's prediction and y_hat the network's. Both are fitted by gradient descent on the
negative log-likelihood (T = 1, tau = 0 initially, learning rate 0.1, 600 iterations), on one part of a
validation set split at random per class, and scored on the rest with ECE / MCE over 15 equal-width bins.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['calibration_errors', 'errors_from_bins', 'reliability_bins', 'scaled_log_probs', 'fit_calibration',
           'stratified_split', 'calibration_experiment', 'MIN_TEMPERATURE']

MIN_TEMPERATURE = 1e-2  # T_aug is clamped here so a large negative tau cannot flip or zero the temperature


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor, num_bins: int = 15) -> List[Dict]:
    """Per bin I_m = ((m-1)/M, m/M]: sample count, acc(B_m) (Eq. 8) and conf(B_m) (Eq. 9); empty bins give None."""
    conf = confidence.double().flatten()
    index = (torch.ceil(conf * num_bins) - 1).clamp(0, num_bins - 1).long()
    count = torch.bincount(index, minlength=num_bins)
    acc, mean_conf = (torch.bincount(index, v, num_bins) / count for v in (correct.double().flatten(), conf))
    return [{'lower': m / num_bins, 'upper': (m + 1) / num_bins, 'count': int(n),
             'accuracy': float(a) if n else None, 'confidence': float(c) if n else None}
            for m, (n, a, c) in enumerate(zip(count, acc, mean_conf))]


def calibration_errors(confidence: torch.Tensor, correct: torch.Tensor, num_bins: int = 15) -> Tuple[float, float]:
    """(ECE, MCE) of the confidences of the predicted class, M equal-width bins (MCE over non-empty bins)."""
    if confidence.numel() == 0:
        raise ValueError('Calibration errors need at least one sample.')
    return errors_from_bins(reliability_bins(confidence, correct, num_bins))


def errors_from_bins(bins: List[Dict]) -> Tuple[float, float]:
    """(ECE, MCE) from `reliability_bins` output."""
    full = [b for b in bins if b['count']]
    total = sum(b['count'] for b in full)
    gaps = [abs(b['accuracy'] - b['confidence']) for b in full]
    return sum(b['count'] / total * gap for b, gap in zip(full, gaps)), max(gaps, default=0.)


def scaled_log_probs(logits: torch.Tensor, temperature: torch.Tensor, tau: Optional[torch.Tensor] = None,
                     agree: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log h_T(z) (Eq. 10), or log h_aug(z) (Eq. 11) when tau (L,) and agree (M, L) (1 where decoder i agrees).

    Batched over repeats too: logits (R, M, K), temperature (R,), tau (R, L), agree (R, M, L).
    """
    temp = temperature.reshape(logits.shape[:-2] + (1, 1))
    if tau is not None:
        if agree is None:
            raise ValueError('h_aug needs the early decoders\' agreement (agree) along with tau.')
        temp = temp * (1. + agree.to(logits.dtype) @ tau.to(logits.dtype).unsqueeze(-1))  # (R, M, 1) or (M, 1)
    temp = temp.clamp_min(MIN_TEMPERATURE)
    return F.log_softmax(logits / temp, dim=-1)


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor, agree: Optional[torch.Tensor] = None,
                    lr: float = 0.1, iterations: int = 600) -> Dict[str, object]:
    """Fit h_T (agree None) or h_aug by gradient descent on the mean NLL; returns {'temperature', 'tau'}.

    Batched: logits (R, M, K), labels (R, M), agree (R, M, L) fit R independent calibrators at once (each
    repeat's parameters only see their own mean NLL) and return lists.
    """
    logits = logits.detach().double()
    repeats = logits.shape[:-2]  # () for one calibrator, (R,) batched
    temperature = torch.ones(repeats, dtype=torch.float64, requires_grad=True)
    tau = None if agree is None else torch.zeros(repeats + agree.shape[-1:], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([temperature] if tau is None else [temperature, tau], lr=lr)
    for _ in range(iterations):
        opt.zero_grad()
        log_p = scaled_log_probs(logits, temperature, tau, agree)
        nll = -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(dim=-1)  # mean NLL per repeat
        nll.sum().backward()
        opt.step()
    return {'temperature': temperature.detach().tolist(), 'tau': None if tau is None else tau.detach().tolist()}


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Random (fit, test) index split keeping `fraction` of every class in the fit part."""
    perms = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    cuts = [int(round(fraction * len(p))) for p in perms]
    return (np.sort(np.concatenate([p[:n] for p, n in zip(perms, cuts)])),
            np.sort(np.concatenate([p[n:] for p, n in zip(perms, cuts)])))


def calibration_experiment(
        logits: torch.Tensor, labels: torch.Tensor, decoder_preds: torch.Tensor,
        fractions: Sequence[float] = (0.25, 0.5), repeats: int = 10, num_bins: int = 15, lr: float = 0.1,
        iterations: int = 600, seed: int = 0,
) -> Dict[str, object]:
    """Table 6: mean (ECE, MCE) of uncalibrated softmax, h_T and h_aug over `repeats` random stratified splits
    of a validation set: logits (M, K), labels (M,), early-decoder predictions (L, M). `fractions`: the share that
    fits the calibrators (0.25 -> Table 6a, 0.5 -> Table 6b)."""
    logits, labels = logits.double(), labels.long()
    agree = (decoder_preds == logits.argmax(dim=1).unsqueeze(0)).t().double()  # (M, L)
    out = {'num_bins': num_bins, 'repeats': repeats, 'lr': lr, 'iterations': iterations, 'splits': []}
    for frac in fractions:
        rng = np.random.default_rng(seed)
        splits = [stratified_split(labels.numpy(), frac, rng) for _ in range(repeats)]
        fit_idx, test_idx = (torch.from_numpy(np.stack(part)) for part in zip(*splits))  # (R, M_part): equal sizes
        h_t = fit_calibration(logits[fit_idx], labels[fit_idx], None, lr, iterations)
        h_aug = fit_calibration(logits[fit_idx], labels[fit_idx], agree[fit_idx], lr, iterations)
        z, lab = logits[test_idx], labels[test_idx]
        t_t, t_aug, tau = (torch.tensor(v, dtype=torch.float64)
                           for v in (h_t['temperature'], h_aug['temperature'], h_aug['tau']))
        log_probs = {'softmax': F.log_softmax(z, dim=-1), 'h_T': scaled_log_probs(z, t_t),
                     'h_aug': scaled_log_probs(z, t_aug, tau, agree[test_idx])}
        summary, first = {}, {}
        for name, lp in log_probs.items():
            conf, pred = lp.exp().max(dim=-1)
            bins = [reliability_bins(c, p == t, num_bins) for c, p, t in zip(conf, pred, lab)]
            errors = np.array([errors_from_bins(b) for b in bins])  # (R, 2): ECE, MCE of every split
            summary[name] = {'ece': float(np.mean(errors[:, 0])), 'mce': float(np.mean(errors[:, 1]))}
            first[name] = bins[0]
        # reliability diagram data: the first split of the first fraction
        out.setdefault('reliability', {'fit_fraction': frac, 'bins': first, 'scores': {
            n: dict(zip(('ece', 'mce'), errors_from_bins(b))) for n, b in first.items()}})
        out['splits'].append({
            'fit_fraction': frac, 'test_fraction': 1. - frac, 'mean': summary,
            'mean_temperature_T': float(np.mean(h_t['temperature'])),
            'mean_temperature_aug': float(np.mean(h_aug['temperature'])),
            'mean_tau': np.mean(np.asarray(h_aug['tau']), axis=0).tolist(),
        })
    return out
