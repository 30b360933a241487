""" The full analysis of a trained Coded ResNeXt: `run_analysis` measures (plain Python values), `write_report`
renders them as a folder: report.md with PNG figures, results.json with every number, figures/*.json with the data
behind every figure.
"""
import datetime
import json
import os
import platform
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from ..layers import unwrap
from ..loss import early_decode
from .bc_metrics import evaluate_scores
from .binary import binary_classifier_cost, count_flops, count_parameters, extract_binary_classifier
from .calibration import calibration_experiment
from .decoders import EarlyExit, agreement_table, decoder_accuracy
from .removal import removal_curves
from .subnns import active_subnns, coded_blocks

__all__ = ['run_analysis', 'write_report', 'collect_outputs']

BC_KINDS = {'coded': 'extracted BC (Coded ResNeXt)', 'full_logit': 'full Coded ResNeXt, class logit',
            'plain': 'same extraction from plain ResNeXt', 'plain_full_logit': 'full plain ResNeXt, class logit'}
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
        out['targets'].append(torch.as_tensor(y).long())
        if decoders:
            out['decoder_preds'].append(torch.stack([s.argmax(dim=1) for s in early_decode(model)]).cpu())
        if bcs:  # the part before the first sliced block (the same in every BC of a model) runs once
            start = bcs[0].prefix_length()
            for m in bcs[0].sequence()[:start]:
                x = m(x)
            out['bc'].append(torch.cat([bc.forward_from(x, start) for bc in bcs], dim=1).float().cpu())
    return {k: torch.cat(v, dim=1 if k == 'decoder_preds' else 0) for k, v in out.items() if v}


def _histogram(values: Dict[str, np.ndarray], bins: int = 40) -> Dict[str, Any]:
    allv = np.concatenate([v for v in values.values() if len(v)])
    edges = np.linspace(float(allv.min()), float(allv.max()) + 1e-6, bins + 1)
    return {'edges': edges.tolist(),
            'counts': {k: np.histogram(v, edges, density=True)[0].tolist() for k, v in values.items() if len(v)}}


def _mean_metrics(per_class: List[Dict], kind: str) -> Dict[str, Dict[str, float]]:
    return {s: {m: float(np.mean([c[kind][s][m] for c in per_class])) for m in ('precision', 'recall', 'f1')}
            for s in EVAL_SETS if s in per_class[0][kind]}


def run_analysis(
        model: nn.Module, train_set: Dataset, test_set: Dataset, ood_set: Optional[Dataset] = None,
        baseline: Optional[nn.Module] = None, classes: Optional[Sequence[int]] = None,
        class_names: Optional[Sequence[str]] = None, input_size: Sequence[int] = (3, 32, 32), batch_size: int = 128,
        workers: int = 0, device: str = 'cpu', removal_blocks: Optional[Sequence[str]] = None,
        calibration_repeats: int = 10, calibration_fractions: Sequence[float] = (0.25, 0.5), seed: int = 0,
        channels_last: bool = True, log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Measure everything the report shows; returns {'results': ..., 'figures': ...} (plain Python values).

    `model` is a trained Coded ResNeXt (eval mode, on `device`). BC thresholds come from `train_set`, every metric
    from `test_set` (both with the eval transform); `ood_set` adds out-of-distribution negatives for every BC;
    `baseline`, a trained plain ResNeXt of the same architecture, adds BCs keeping the same codewords' branches and
    its class logits. `channels_last` gives the same results, several times faster on CPUs.
    """
    net = unwrap(model).eval()
    num_classes = int(net.num_classes)
    classes = list(range(num_classes)) if classes is None else [int(c) for c in classes]  # checked by extraction
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
    loaders = {s: DataLoader(ds, batch_size=batch_size, num_workers=workers)
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
    sources = [('coded', outs, 'bc'), ('full_logit', outs, 'logits')]
    if baseline is not None:
        sources += [('plain', plain_outs, 'bc'), ('plain_full_logit', plain_outs, 'logits')]
    per_class, panels = [], []
    for j, k in enumerate(classes):
        row: Dict[str, Any] = {'class': k, 'name': names[k]}
        for kind, o, what in sources:
            sc = {split: o[split][what][:, j if what == 'bc' else k].numpy() for split in o}
            row[kind] = evaluate_scores(sc['train'], (o['train']['targets'] == k).numpy(),
                                        sc['test'], (o['test']['targets'] == k).numpy(), sc.get('ood'), seed=seed + k)
        per_class.append(row)
        pos = test['targets'] == k
        values = {'positives': test['bc'][pos, j].numpy(), 'negatives': test['bc'][~pos, j].numpy()}
        if 'ood' in outs:
            values['ood'] = outs['ood']['bc'][:, j].numpy()
        if len(panels) < MAX_PANELS:
            panels.append(dict(title=f'{k}: {names[k]}', threshold=row['coded']['threshold'], **_histogram(values)))
    results['binary_classifiers'] = {
        'classes': per_class,
        'mean': {kind: _mean_metrics(per_class, kind) for kind in BC_KINDS if kind in per_class[0]},
        'cost': binary_classifier_cost(net, bcs[0], input_size),
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
    full_flops = results['binary_classifiers']['cost']['flops_full']
    flops = [count_flops(EarlyExit(net, i), input_size) for i in range(len(block_names))]
    exits = [{'block': n, 'flops': f, 'flop_share': f / full_flops} for n, f in zip(block_names, flops)]
    dec_acc = decoder_accuracy(test['decoder_preds'], test['targets'])
    figures['early_decoders'] = {'blocks': block_names, 'accuracy': dec_acc, 'final_accuracy': accuracy}
    results['early_decoders'] = dict(figures['early_decoders'], early_exit=exits, full_flops=full_flops,
                                     agreement=agreement_table(test['decoder_preds'], final_pred, test['targets']))

    # --- subNN removal (§4.2)
    log('subNN removal curves')
    batches = [(x.to(memory_format=memory_format), y) for x, y in loaders['test']] if len(test_set) <= 20000 \
        else loaders['test']
    results['removal'] = removal_curves(net, batches, list(removal_blocks) if removal_blocks else None,
                                        torch.device(device), seed)
    figures['removal'] = {'curves': results['removal']}

    # --- calibration (Appendix C)
    log(f'calibration: {calibration_repeats} random splits per fraction')
    calib = calibration_experiment(test['logits'], test['targets'], test['decoder_preds'],
                                   fractions=calibration_fractions, repeats=calibration_repeats, seed=seed)
    figures['reliability'] = calib.pop('reliability')
    results['calibration'] = calib
    return {'results': results, 'figures': figures}


def pct(v: Optional[float]) -> str:
    return '–' if v is None else f'{100 * v:.1f}'


def markdown_table(header: Sequence[str], rows: List[Sequence[Any]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(f'{v:.4g}' if isinstance(v, float) else str(v) for v in row) + ' |'
                              for row in rows])


def _markdown(r: Dict[str, Any], meta: Dict[str, Any]) -> str:
    bc, ed, cal = r['binary_classifiers'], r['early_decoders'], r['calibration']
    cost = bc['cost']
    info = [f'- **{k.replace("_", " ")}**: `{meta[k]}`' for k in ('checkpoint', 'dataset', 'ood_dataset', 'baseline',
                                                                 'data_config', 'device', 'date', 'command')
            if meta.get(k) is not None]
    info += ['- **samples**: ' + ', '.join(f'{k} {v}' for k, v in r['samples'].items()),
             f'- **accuracy (validation)**: {pct(r["accuracy"])} %' + (
                 f' (plain ResNeXt baseline: {pct(r["baseline_accuracy"])} %)' if 'baseline_accuracy' in r else '')]
    ks = lambda c, mode: ', '.join(f'k={k}: {pct(a)}' for k, a in zip(c[f'k_{mode}'], c[f'accuracy_{mode}']))  # noqa
    cell = lambda m, n: f'{100 * m[n]["ece"]:.2f}, {100 * m[n]["mce"]:.2f}'  # noqa: E731
    blocks = [
        f'# Coded ResNeXt analysis: {meta.get("model", "?")}', '\n'.join(info), '## Binary classifiers (§4.3)',
        f'Each BC keeps its class\'s active subNNs in every coded block and one row of the fc: '
        f'**{cost["params"]:,} of {cost["params_full"]:,} parameters ({100 * cost["param_share"]:.1f} %)**, '
        f'**{100 * cost["flop_share"]:.1f} % of the FLOPs** at {tuple(cost["input_size"])} (exact counts: conv / '
        f'fc weights and biases, BN affine; FLOPs by torch\'s FlopCounterMode). Threshold: maximum F1 on '
        f'training images. Mean over classes (%):',
        markdown_table(('binary classifier', 'evaluation', 'precision', 'recall', 'F1'), [
            (BC_KINDS[kind], EVAL_SETS[s], pct(m['precision']), pct(m['recall']), pct(m['f1']))
            for kind, sets in bc['mean'].items() for s, m in sets.items()]),
        'Extracted BC per class (precision / recall / F1, %):',
        markdown_table(('class', 'threshold', 'validation', '9 neg. per pos.', 'OOD negatives'), [
            (f'{c["class"]} {c["name"]}', f'{c["coded"]["threshold"]:.3f}', *(
                ' / '.join(pct(c['coded'][s][m]) for m in ('precision', 'recall', 'f1')) if s in c['coded'] else '–'
                for s in EVAL_SETS)) for c in bc['classes']]),
        '![BC output distributions](bc_distributions.png)',
        '![Precision-recall of the binary classifiers](precision_recall.png)', '## Early decoders (§4.4)',
        'Block l predicts the class whose codeword is nearest (L2) to r_l x its normalised subNN energies; early exit '
        'runs the network only up to that block.',
        markdown_table(('block', 'decoder accuracy (%)', 'early-exit FLOP share (%)'),
                       [(e['block'], pct(a), pct(e['flop_share'])) for a, e in zip(ed['accuracy'], ed['early_exit'])]
                       + [('full network', pct(ed['final_accuracy']), '100.0')]),
        '![Early-decoder accuracy](early_decoders.png)',
        'Accuracy of the final prediction given how many early decoders agree with it (Table 3):',
        markdown_table(('decoders agreeing', 'samples', 'accuracy (%)'),
                       [(row['agree'], row['count'], pct(row['accuracy'])) for row in ed['agreement']]),
        '## SubNN removal (§4.2)', 'k random subNNs of one block removed per sample, from the subNNs active for its '
        'class or from the inactive ones (accuracy %):',
        '\n'.join(f'- **{c["block"]}**: active removed {ks(c, "active")}; inactive removed {ks(c, "inactive")}'
                  for c in r['removal']),
        '![SubNN removal](removal.png)', '## Calibration (Appendix C)',
        f'h_T: temperature scaling (Eq. 10); h_aug: one extra tau per early decoder (Eq. 11). Fitted by gradient '
        f'descent (lr {cal["lr"]}, {cal["iterations"]} iterations) on a random stratified part of the validation '
        f'set, scored on the rest with {cal["num_bins"]} bins; mean over {cal["repeats"]} random splits '
        f'(ECE %, MCE %):',
        markdown_table(('fit / test', 'softmax', 'h_T', 'h_aug', 'mean T (h_T)', 'mean T, tau (h_aug)'), [
            (f'{100 * s["fit_fraction"]:.0f} / {100 * s["test_fraction"]:.0f}', cell(s['mean'], 'softmax'),
             cell(s['mean'], 'h_T'), cell(s['mean'], 'h_aug'), f'{s["mean_temperature_T"]:.3f}',
             f'{s["mean_temperature_aug"]:.3f}; ' + ', '.join(f'{t:.3f}' for t in s['mean_tau']))
            for s in cal['splits']]),
        '![Reliability diagrams](reliability.png)', '## Files',
        '- `results.json`: every number above.\n- `figures/*.json`: the data behind each figure.',
    ]
    return '\n\n'.join(blocks) + '\n'


def _atomic_write(path: str, text: str) -> None:
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)


def write_report(analysis: Dict[str, Any], output_dir: str, meta: Optional[Dict[str, Any]] = None) -> str:
    """Write report.md, results.json, figures/*.json and the PNGs into `output_dir`; returns report.md's path."""
    from . import plots
    meta = {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'torch': torch.__version__,
            'host': platform.node(), **(meta or {})}
    results, figures = analysis['results'], analysis['figures']
    out = lambda n: os.path.join(output_dir, n)  # noqa: E731
    os.makedirs(out('figures'), exist_ok=True)
    for name, data in figures.items():  # figures/NAME.json holds the keyword arguments of plots.plot_NAME
        _atomic_write(out(f'figures/{name}.json'), json.dumps(data, indent=1))
        getattr(plots, f'plot_{name}')(out(f'{name}.png'), **data)
    _atomic_write(out('results.json'), json.dumps({'meta': meta, **results}, indent=1, default=str))
    _atomic_write(out('report.md'), _markdown(results, meta))
    return out('report.md')
