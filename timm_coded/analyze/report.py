""" The full analysis of a trained Coded ResNeXt and its report folder (report.md with PNG figures,
results.json with every number, figures/*.json with the data behind every figure).

`run_analysis` does the measuring (binary classifiers, early decoders, subNN removal, calibration) and
returns plain Python values; `write_report` renders them. The CLI (`python -m timm_coded.analyze`) chains
both after loading the model and data.
"""
import datetime
import json
import os
import platform
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.utils.data

from ..layers import unwrap
from ..loss import early_decode
from .bc_metrics import evaluate_scores
from .binary import binary_classifier_cost, count_flops, count_parameters, extract_binary_classifier
from .calibration import calibration_experiment, errors_from_bins
from .decoders import EarlyExit, agreement_table, decoder_accuracy
from .removal import removal_curves
from .subnns import active_subnns, check_class_index, coded_blocks

__all__ = ['run_analysis', 'write_report', 'collect_outputs']

BC_KINDS = {
    'coded': 'extracted BC (Coded ResNeXt)',
    'full_logit': 'full Coded ResNeXt, class logit',
    'plain': 'same extraction from plain ResNeXt',
    'plain_full_logit': 'full plain ResNeXt, class logit',
}
MAX_PANELS = 10  # output-distribution panels: the first 10 analysed classes, as the paper's Fig. 7
EVAL_SETS = {'val': 'validation, all negatives', 'val_1to9': 'validation, 9 negatives per positive',
             'ood': 'validation positives vs OOD negatives'}


@torch.no_grad()
def collect_outputs(model: nn.Module, loader: Sequence, bcs: Optional[List[nn.Module]] = None,
                    device: str = 'cpu', decoders: bool = True,
                    memory_format: torch.memory_format = torch.contiguous_format) -> Dict[str, torch.Tensor]:
    """One pass: targets (M,), logits (M, K), early-decoder predictions (L, M) and BC outputs (M, len(bcs))."""
    out: Dict[str, List[torch.Tensor]] = {'targets': [], 'logits': [], 'decoder_preds': [], 'bc': []}
    for x, y in loader:
        x = x.to(device, memory_format=memory_format)
        out['logits'].append(model(x).float().cpu())
        out['targets'].append(torch.as_tensor(y))
        if decoders:
            out['decoder_preds'].append(torch.stack([s.argmax(dim=1) for s in early_decode(model)]).cpu())
        if bcs:
            out['bc'].append(_run_bcs(bcs, x).float().cpu())
    res = {'targets': torch.cat(out['targets']).long(), 'logits': torch.cat(out['logits'])}
    if decoders:
        res['decoder_preds'] = torch.cat(out['decoder_preds'], dim=1)
    if bcs:
        res['bc'] = torch.cat(out['bc'])
    return res


def _run_bcs(bcs: List[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """(B, len(bcs)) outputs; the part before the first sliced block (identical in every BC of one model) runs
    once."""
    start = bcs[0].prefix_length()
    if any(bc.prefix_length() != start for bc in bcs):
        return torch.cat([bc(x) for bc in bcs], dim=1)
    for m in bcs[0].sequence()[:start]:
        x = m(x)
    return torch.cat([bc.forward_from(x, start) for bc in bcs], dim=1)


def _histogram(values: Dict[str, np.ndarray], bins: int = 40) -> Dict[str, Any]:
    allv = np.concatenate([v for v in values.values() if len(v)])
    edges = np.linspace(float(allv.min()), float(allv.max()) + 1e-6, bins + 1)
    return {'edges': edges.tolist(),
            'counts': {k: np.histogram(v, edges, density=True)[0].tolist() for k, v in values.items() if len(v)}}


def _mean_metrics(per_class: List[Dict], kind: str) -> Dict[str, Dict[str, float]]:
    out = {}
    for s in EVAL_SETS:
        rows = [c[kind][s] for c in per_class if kind in c and s in c[kind]]
        if rows:
            out[s] = {m: float(np.mean([r[m] for r in rows])) for m in ('precision', 'recall', 'f1')}
    return out


def run_analysis(
        model: nn.Module,
        train_set: torch.utils.data.Dataset,
        test_set: torch.utils.data.Dataset,
        ood_set: Optional[torch.utils.data.Dataset] = None,
        baseline: Optional[nn.Module] = None,
        classes: Optional[Sequence[int]] = None,
        class_names: Optional[Sequence[str]] = None,
        input_size: Sequence[int] = (3, 32, 32),
        batch_size: int = 128,
        workers: int = 0,
        device: str = 'cpu',
        removal_blocks: Optional[Sequence[str]] = None,
        calibration_repeats: int = 10,
        calibration_fractions: Sequence[float] = (0.25, 0.5),
        seed: int = 0,
        channels_last: bool = True,
        log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Measure everything the report shows; returns {'results': ..., 'figures': ...} (plain Python values).

    Args:
        model: Trained Coded ResNeXt (eval mode, on `device`).
        train_set / test_set: Training data (BC thresholds) and validation data (all metrics), eval transform.
        ood_set: Optional out-of-distribution images (negatives for every BC).
        baseline: Optional trained plain ResNeXt of the same architecture: BCs keeping the same codewords'
            branches, and its class logits.
        classes: Classes whose binary classifiers are extracted (default all).
        channels_last: Run every network in channels_last (same results; several times faster on CPUs).
    """
    net = unwrap(model).eval()
    num_classes = int(net.num_classes)
    classes = list(range(num_classes)) if classes is None else [check_class_index(net, int(c)) for c in classes]
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    block_names = [n for n, _ in coded_blocks(net)]  # clear error without coded blocks
    log(f'extracting {len(classes)} binary classifiers')
    bcs = [extract_binary_classifier(net, k).to(device) for k in classes]
    plain_bcs = None
    if baseline is not None:
        baseline = unwrap(baseline).eval()
        plain_bcs = [extract_binary_classifier(baseline, k, active_subnns(net, k)).to(device) for k in classes]

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for m in [net] + bcs + ([baseline] + plain_bcs if baseline is not None else []):
        m.to(memory_format=memory_format)
    loaders = {s: torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
               for s, ds in (('train', train_set), ('test', test_set), ('ood', ood_set)) if ds is not None}
    outs, plain_outs = {}, {}
    for split, loader in loaders.items():
        log(f'forward passes on {split} ({len(loader.dataset)} images)')
        outs[split] = collect_outputs(net, loader, bcs, device, decoders=split == 'test', memory_format=memory_format)
        if baseline is not None:
            plain_outs[split] = collect_outputs(baseline, loader, plain_bcs, device, decoders=False,
                                                memory_format=memory_format)

    test = outs['test']
    final_pred = test['logits'].argmax(dim=1)
    accuracy = float((final_pred == test['targets']).float().mean())
    results: Dict[str, Any] = {'accuracy': accuracy, 'num_classes': num_classes,
                               'samples': {s: int(o['targets'].numel()) for s, o in outs.items()}}
    figures: Dict[str, Any] = {}
    if baseline is not None:
        results['baseline_accuracy'] = float((plain_outs['test']['logits'].argmax(1) == test['targets']).float().mean())

    # --- binary classifiers (§4.3)
    log('evaluating binary classifiers')
    per_class, panels = [], []
    for j, k in enumerate(classes):
        def scores(o, kind):
            return (o['bc'][:, j] if kind == 'bc' else o['logits'][:, k]).numpy()

        row: Dict[str, Any] = {'class': k, 'name': names[k]}
        sources = [('coded', outs, 'bc'), ('full_logit', outs, 'logit')]
        if baseline is not None:
            sources += [('plain', plain_outs, 'bc'), ('plain_full_logit', plain_outs, 'logit')]
        for kind, o, what in sources:
            row[kind] = evaluate_scores(
                scores(o['train'], what), (o['train']['targets'] == k).numpy(),
                scores(o['test'], what), (o['test']['targets'] == k).numpy(),
                scores(o['ood'], what) if 'ood' in o else None, seed=seed + k)
        per_class.append(row)
        pos = test['targets'] == k
        values = {'positives': test['bc'][pos, j].numpy(), 'negatives': test['bc'][~pos, j].numpy()}
        if 'ood' in outs:
            values['ood'] = outs['ood']['bc'][:, j].numpy()
        if len(panels) < MAX_PANELS:
            panels.append(dict(title=f'{k}: {names[k]}', threshold=row['coded']['threshold'], **_histogram(values)))
    cost = binary_classifier_cost(net, bcs[0], input_size)
    results['binary_classifiers'] = {
        'classes': per_class,
        'mean': {kind: _mean_metrics(per_class, kind) for kind in BC_KINDS if kind in per_class[0]},
        'cost': cost,
        'kept_subnns_class0': active_subnns(net, classes[0]),
    }
    if baseline is not None:
        results['binary_classifiers']['plain_cost'] = {
            'params': count_parameters(plain_bcs[0]), 'params_full': count_parameters(baseline)}
    figures['bc_distributions'] = {'panels': panels}
    figures['precision_recall'] = {'panels': {
        EVAL_SETS[s]: {BC_KINDS[kind]: [{'class': c['class'], 'recall': c[kind][s]['recall'],
                                         'precision': c[kind][s]['precision']} for c in per_class]
                       for kind in BC_KINDS if kind in per_class[0]}
        for s in ('val_1to9', 'ood') if s in per_class[0]['coded']}}

    # --- early decoders (§4.4)
    log('early decoders and early-exit costs')
    full_flops = count_flops(net, input_size)
    exits = []
    for i, name in enumerate(block_names):
        f = count_flops(EarlyExit(net, i), input_size)
        exits.append({'block': name, 'flops': f, 'flop_share': f / full_flops})
    dec_acc = decoder_accuracy(test['decoder_preds'], test['targets'])
    results['early_decoders'] = {
        'blocks': block_names, 'accuracy': dec_acc, 'final_accuracy': accuracy,
        'agreement': agreement_table(test['decoder_preds'], final_pred, test['targets']),
        'early_exit': exits, 'full_flops': full_flops,
    }
    figures['early_decoders'] = {'blocks': block_names, 'accuracy': dec_acc, 'final_accuracy': accuracy}

    # --- subNN removal (§4.2)
    log('subNN removal curves')
    batches = [(x.to(memory_format=memory_format), y) for x, y in loaders['test']] if len(test_set) <= 20000 \
        else loaders['test']
    curves = removal_curves(net, batches, list(removal_blocks) if removal_blocks else None, torch.device(device),
                            seed)
    results['removal'] = curves
    figures['removal'] = {'curves': curves}

    # --- calibration (Appendix C)
    log(f'calibration: {calibration_repeats} random splits per fraction')
    calib = calibration_experiment(test['logits'], test['targets'], test['decoder_preds'],
                                   fractions=calibration_fractions, repeats=calibration_repeats, seed=seed)
    reliability = calib['splits'][0]['reliability_first_split']
    figures['reliability'] = {'fit_fraction': calib['splits'][0]['fit_fraction'], 'bins': reliability,
                              'scores': {n: dict(zip(('ece', 'mce'), errors_from_bins(b)))
                                         for n, b in reliability.items()}}
    for s in calib['splits']:
        s.pop('reliability_first_split')
    results['calibration'] = calib
    return {'results': results, 'figures': figures}


def _pct(v: Optional[float]) -> str:
    return '–' if v is None else f'{100 * v:.1f}'


def markdown_table(header: Sequence[str], rows: List[Sequence[Any]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(f'{v:.4g}' if isinstance(v, float) else str(v) for v in row) + ' |'
                              for row in rows])


def _table(header: Sequence[str], rows: List[Sequence[Any]]) -> List[str]:
    return [markdown_table(header, rows), '']


def _markdown(r: Dict[str, Any], meta: Dict[str, Any]) -> str:
    bc, ed, cal = r['binary_classifiers'], r['early_decoders'], r['calibration']
    cost = bc['cost']
    lines = [f'# Coded ResNeXt analysis: {meta.get("model", "?")}', '']
    lines += [f'- **{k.replace("_", " ")}**: `{meta[k]}`' for k in ('checkpoint', 'dataset', 'ood_dataset', 'baseline',
                                                                    'data_config', 'device', 'date', 'command')
              if meta.get(k) is not None]
    lines += ['- **samples**: ' + ', '.join(f'{k} {v}' for k, v in r['samples'].items()),
              f'- **accuracy (validation)**: {_pct(r["accuracy"])} %' + (
                  f' (plain ResNeXt baseline: {_pct(r["baseline_accuracy"])} %)' if 'baseline_accuracy' in r else ''),
              '', '## Binary classifiers (§4.3)', '',
              f'Each BC keeps its class\'s active subNNs in every coded block and one row of the fc: '
              f'**{cost["params"]:,} of {cost["params_full"]:,} parameters ({100 * cost["param_share"]:.1f} %)**, '
              f'**{100 * cost["flop_share"]:.1f} % of the FLOPs** at {tuple(cost["input_size"])} (exact counts: conv / '
              f'fc weights and biases, BN affine; FLOPs by torch\'s FlopCounterMode). Threshold: maximum F1 on '
              f'training images. Mean over classes (%):', '']
    lines += _table(('binary classifier', 'evaluation', 'precision', 'recall', 'F1'), [
        (BC_KINDS[kind], EVAL_SETS[s], _pct(m['precision']), _pct(m['recall']), _pct(m['f1']))
        for kind, sets in bc['mean'].items() for s, m in sets.items()])
    lines += ['Extracted BC per class (precision / recall / F1, %):', '']
    lines += _table(('class', 'threshold', 'validation', '9 neg. per pos.', 'OOD negatives'), [
        (f'{c["class"]} {c["name"]}', f'{c["coded"]["threshold"]:.3f}', *(
            ' / '.join(_pct(c['coded'][s][m]) for m in ('precision', 'recall', 'f1')) if s in c['coded'] else '–'
            for s in ('val', 'val_1to9', 'ood'))) for c in bc['classes']])
    lines += ['![BC output distributions](bc_distributions.png)', '',
              '![Precision-recall of the binary classifiers](precision_recall.png)', '',
              '## Early decoders (§4.4)', '', 'Block l predicts the class whose codeword is nearest (L2) to r_l x its '
              'normalised subNN energies; early exit runs the network only up to that block.', '']
    lines += _table(('block', 'decoder accuracy (%)', 'early-exit FLOP share (%)'),
                    [(n, _pct(a), _pct(e['flop_share'])) for n, a, e in zip(ed['blocks'], ed['accuracy'],
                                                                            ed['early_exit'])]
                    + [('full network', _pct(ed['final_accuracy']), '100.0')])
    lines += ['![Early-decoder accuracy](early_decoders.png)', '',
              'Accuracy of the final prediction given how many early decoders agree with it (Table 3):', '']
    lines += _table(('decoders agreeing', 'samples', 'accuracy (%)'),
                    [(row['agree'], row['count'], _pct(row['accuracy'])) for row in ed['agreement']])
    lines += ['## SubNN removal (§4.2)', '', 'k random subNNs of one block removed per sample, from the subNNs active '
              'for its class or from the inactive ones (accuracy %):', '']
    lines += [f'- **{c["block"]}**: active removed ' + ', '.join(
        f'k={k}: {_pct(a)}' for k, a in zip(c['k_active'], c['accuracy_active'])) + '; inactive removed ' + ', '.join(
        f'k={k}: {_pct(a)}' for k, a in zip(c['k_inactive'], c['accuracy_inactive'])) for c in r['removal']]
    lines += ['', '![SubNN removal](removal.png)', '', '## Calibration (Appendix C)', '',
              f'h_T: temperature scaling (Eq. 10); h_aug: one extra tau per early decoder (Eq. 11). Fitted by gradient '
              f'descent (lr {cal["lr"]}, {cal["iterations"]} iterations) on a random stratified part of the validation '
              f'set, scored on the rest with {cal["num_bins"]} bins; mean over {cal["repeats"]} random splits '
              f'(ECE %, MCE %):', '']
    cell = lambda m, n: f'{100 * m[n]["ece"]:.2f}, {100 * m[n]["mce"]:.2f}'  # noqa: E731
    lines += _table(('fit / test', 'softmax', 'h_T', 'h_aug', 'mean T (h_T)', 'mean T, tau (h_aug)'), [
        (f'{100 * s["fit_fraction"]:.0f} / {100 * s["test_fraction"]:.0f}', cell(s['mean'], 'softmax'),
         cell(s['mean'], 'h_T'), cell(s['mean'], 'h_aug'), f'{s["mean_temperature_T"]:.3f}',
         f'{s["mean_temperature_aug"]:.3f}; ' + ', '.join(f'{t:.3f}' for t in s['mean_tau'])) for s in cal['splits']])
    lines += ['![Reliability diagrams](reliability.png)', '', '## Files', '', '- `results.json`: every number above.',
              '- `figures/*.json`: the data behind each figure.', '']
    return '\n'.join(lines)


def _atomic_write(path: str, text: str) -> None:
    folder = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_report(analysis: Dict[str, Any], output_dir: str, meta: Optional[Dict[str, Any]] = None) -> str:
    """Write report.md, results.json, figures/*.json and the PNGs into `output_dir`; returns report.md's path."""
    from . import plots
    meta = dict(meta or {})
    meta.setdefault('date', datetime.datetime.now().isoformat(timespec='seconds'))
    meta.setdefault('torch', torch.__version__)
    meta.setdefault('host', platform.node())
    results, figures = analysis['results'], analysis['figures']
    os.makedirs(os.path.join(output_dir, 'figures'), exist_ok=True)
    for name, data in figures.items():
        _atomic_write(os.path.join(output_dir, 'figures', f'{name}.json'), json.dumps(data, indent=1))
    out = lambda n: os.path.join(output_dir, n)  # noqa: E731
    plots.plot_bc_distributions(figures['bc_distributions']['panels'], out('bc_distributions.png'))
    plots.plot_precision_recall(figures['precision_recall']['panels'], out('precision_recall.png'))
    fd = figures['early_decoders']
    plots.plot_decoder_accuracy(fd['blocks'], fd['accuracy'], fd['final_accuracy'], out('early_decoders.png'))
    plots.plot_removal(figures['removal']['curves'], out('removal.png'))
    plots.plot_reliability(figures['reliability']['bins'], out('reliability.png'), figures['reliability']['scores'])
    _atomic_write(out('results.json'), json.dumps({'meta': meta, **results}, indent=1, default=str))
    _atomic_write(out('report.md'), _markdown(results, meta))
    return out('report.md')
