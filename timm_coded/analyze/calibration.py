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
    hit = correct.double().flatten()
    index = (torch.ceil(conf * num_bins) - 1).clamp(0, num_bins - 1).long()
    bins = []
    for m in range(num_bins):
        sel = index == m
        n = int(sel.sum())
        bins.append({'lower': m / num_bins, 'upper': (m + 1) / num_bins, 'count': n,
                     'accuracy': float(hit[sel].mean()) if n else None,
                     'confidence': float(conf[sel].mean()) if n else None})
    return bins


def calibration_errors(confidence: torch.Tensor, correct: torch.Tensor, num_bins: int = 15) -> Tuple[float, float]:
    """(ECE, MCE) of the confidences of the predicted class, M equal-width bins (MCE over non-empty bins)."""
    if confidence.numel() == 0:
        raise ValueError('Calibration errors need at least one sample.')
    return errors_from_bins(reliability_bins(confidence, correct, num_bins))


def errors_from_bins(bins: List[Dict]) -> Tuple[float, float]:
    """(ECE, MCE) from `reliability_bins` output."""
    total = sum(b['count'] for b in bins)
    ece, mce = 0., 0.
    for b in bins:
        if b['count']:
            gap = abs(b['accuracy'] - b['confidence'])
            ece += b['count'] / total * gap
            mce = max(mce, gap)
    return ece, mce


def scaled_log_probs(logits: torch.Tensor, temperature: torch.Tensor, tau: Optional[torch.Tensor] = None,
                     agree: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log h_T(z) (Eq. 10), or log h_aug(z) (Eq. 11) when tau (L,) and agree (M, L) (1 where decoder i agrees).

    Batched over repeats too: logits (R, M, K), temperature (R,), tau (R, L), agree (R, M, L).
    """
    batched = logits.dim() == 3
    temp = temperature.reshape(-1, 1, 1) if batched else temperature.reshape(1, 1)
    if tau is not None:
        if agree is None:
            raise ValueError('h_aug needs the early decoders\' agreement (agree) along with tau.')
        shift = (agree.to(logits.dtype) @ tau.to(logits.dtype).unsqueeze(-1)).squeeze(-1)  # (R, M) or (M,)
        temp = temp * (1. + shift).unsqueeze(-1)
    temp = temp.clamp_min(MIN_TEMPERATURE)
    return F.log_softmax(logits / temp, dim=-1)


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor, agree: Optional[torch.Tensor] = None,
                    lr: float = 0.1, iterations: int = 600) -> Dict[str, object]:
    """Fit h_T (agree None) or h_aug by gradient descent on the mean NLL; returns {'temperature', 'tau'}.

    Batched: logits (R, M, K), labels (R, M), agree (R, M, L) fit R independent calibrators at once (each
    repeat's parameters only see their own mean NLL) and return lists.
    """
    batched = logits.dim() == 3
    logits = logits.detach().double()
    if not batched:
        logits, labels = logits.unsqueeze(0), labels.unsqueeze(0)
        agree = None if agree is None else agree.unsqueeze(0)
    repeats = logits.shape[0]
    temperature = torch.ones(repeats, dtype=torch.float64, requires_grad=True)
    params = [temperature]
    tau = None
    if agree is not None:
        agree = agree.detach().double()
        tau = torch.zeros(repeats, agree.shape[-1], dtype=torch.float64, requires_grad=True)
        params.append(tau)
    opt = torch.optim.SGD(params, lr=lr)
    for _ in range(iterations):
        opt.zero_grad()
        log_p = scaled_log_probs(logits, temperature, tau, agree)
        nll = -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(dim=1)  # (R,) mean NLL per repeat
        nll.sum().backward()
        opt.step()
    temps = temperature.detach().tolist()
    taus = None if tau is None else tau.detach().tolist()
    if batched:
        return {'temperature': temps, 'tau': taus}
    return {'temperature': temps[0], 'tau': None if taus is None else taus[0]}


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Random (fit, test) index split keeping `fraction` of every class in the fit part."""
    fit, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(fraction * len(idx)))
        fit.append(idx[:n])
        test.append(idx[n:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(test))


def calibration_experiment(
        logits: torch.Tensor,
        labels: torch.Tensor,
        decoder_preds: torch.Tensor,
        fractions: Sequence[float] = (0.25, 0.5),
        repeats: int = 10,
        num_bins: int = 15,
        lr: float = 0.1,
        iterations: int = 600,
        seed: int = 0,
) -> Dict[str, object]:
    """Table 6: mean (ECE, MCE) of uncalibrated softmax, h_T and h_aug over `repeats` random stratified splits.

    Args:
        logits: (M, K) network outputs on a validation set.
        labels: (M,) true classes.
        decoder_preds: (L, M) early-decoder predictions.
        fractions: Share of the set used to fit the calibrators (0.25 -> Table 6a, 0.5 -> Table 6b).
    """
    logits, labels = logits.double(), labels.long()
    agree = (decoder_preds == logits.argmax(dim=1).unsqueeze(0)).t().double()  # (M, L)
    y = labels.numpy()
    out = {'num_bins': num_bins, 'repeats': repeats, 'lr': lr, 'iterations': iterations, 'splits': []}
    for frac in fractions:
        rng = np.random.default_rng(seed)
        splits = [stratified_split(y, frac, rng) for _ in range(repeats)]
        fit_idx = torch.from_numpy(np.stack([f for f, _ in splits]))  # (R, M_fit): equal sizes per class
        h_t = fit_calibration(logits[fit_idx], labels[fit_idx], None, lr, iterations)
        h_aug = fit_calibration(logits[fit_idx], labels[fit_idx], agree[fit_idx], lr, iterations)
        runs = {'softmax': [], 'h_T': [], 'h_aug': []}
        reliability = {}
        for rep, (_, test_idx) in enumerate(splits):
            test_idx = torch.from_numpy(test_idx)
            z, lab, ag = logits[test_idx], labels[test_idx], agree[test_idx]
            temp_t, temp_aug, tau = (torch.tensor(v[rep], dtype=torch.float64)
                                     for v in (h_t['temperature'], h_aug['temperature'], h_aug['tau']))
            log_probs = {'softmax': F.log_softmax(z, dim=1), 'h_T': scaled_log_probs(z, temp_t),
                         'h_aug': scaled_log_probs(z, temp_aug, tau, ag)}
            for name, lp in log_probs.items():
                conf, pred = lp.exp().max(dim=1)
                bins = reliability_bins(conf, pred == lab, num_bins)
                runs[name].append(dict(zip(('ece', 'mce'), errors_from_bins(bins))))
                if rep == 0:  # reliability diagram data of the first split
                    reliability[name] = bins
        summary = {name: {m: float(np.mean([r[m] for r in rs])) for m in ('ece', 'mce')} for name, rs in runs.items()}
        out['splits'].append({
            'fit_fraction': frac, 'test_fraction': 1. - frac, 'mean': summary,
            'mean_temperature_T': float(np.mean(h_t['temperature'])),
            'mean_temperature_aug': float(np.mean(h_aug['temperature'])),
            'mean_tau': np.mean(np.asarray(h_aug['tau']), axis=0).tolist(),
            'reliability_first_split': reliability,
        })
    return out
