""" Figures of the analysis report (matplotlib, Agg backend). `plot_NAME(path, **data)` writes one PNG from the
plain Python values the report also stores as figures/NAME.json.
"""
import math
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ['plot_bc_distributions', 'plot_precision_recall', 'plot_early_decoders', 'plot_removal', 'plot_reliability']

_COLORS = {'positives': '#1f77b4', 'negatives': '#d62728', 'ood': '#ff7f0e'}


def _save(fig, path: str, title: str) -> str:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bc_distributions(path: str, panels: List[Dict]) -> str:
    """Histograms of binary-classifier outputs, one panel per class: {'title', 'edges', 'threshold',
    'counts': {'positives'|'negatives'|'ood': [...] (densities)}}."""
    cols = min(5, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        edges = panel['edges']
        for kind, dens in panel['counts'].items():
            ax.stairs(dens, edges, fill=True, alpha=0.3, color=_COLORS[kind])
            ax.stairs(dens, edges, color=_COLORS[kind], lw=1.2, label=kind)
        ax.axvline(panel['threshold'], color='k', lw=1, ls='--', label='threshold')
        ax.set_title(panel['title'], fontsize=9)
        ax.set_xlabel('BC output (logit)', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yscale('log')
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=7)
    return _save(fig, path, 'Binary-classifier output distributions (density, log scale; validation / OOD)')


def plot_precision_recall(path: str, panels: Dict[str, Dict[str, List[Dict]]]) -> str:
    """Precision vs recall of every binary classifier: `panels` maps a panel title (an evaluation set) to
    {series label: [{'recall', 'precision', 'class'}]}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.6), squeeze=False)
    markers = ['o', 's', '^', 'D', 'v', 'P', 'X']
    for ax, (title, series) in zip(axes.flat, panels.items()):
        for i, (label, points) in enumerate(series.items()):
            ax.scatter([p['recall'] for p in points], [p['precision'] for p in points], label=label,
                       marker=markers[i % len(markers)], color=f'C{i}', alpha=0.75, s=30)
        ax.set(xlabel='recall', ylabel='precision', xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='lower left')
        ax.set_title(title, fontsize=9)
    return _save(fig, path, 'Binary classifiers: precision-recall (one point per class)')


def plot_early_decoders(path: str, blocks: Sequence[str], accuracy: Sequence[float], final_accuracy: float) -> str:
    """Accuracy of each early decoder in depth order, with the full network's accuracy as a line."""
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(blocks) + 2), 3.8))
    x = range(len(blocks))
    ax.bar_label(ax.bar(x, [100 * a for a in accuracy], color='#4c72b0'), fmt='%.1f', padding=2, fontsize=8)
    ax.axhline(100 * final_accuracy, color='k', ls='--', lw=1, label=f'full network {100 * final_accuracy:.1f}%')
    ax.set_xticks(list(x), list(blocks), rotation=30, fontsize=8)
    ax.set(ylabel='accuracy (%)', ylim=(0, 105))
    ax.legend(fontsize=8, loc='lower right')
    return _save(fig, path, 'Early decoders: accuracy per coded block')


def plot_removal(path: str, curves: List[Dict]) -> str:
    """Accuracy vs number of removed subNNs, active vs inactive, one panel per block."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, c in zip(axes.flat, curves):
        for mode, style, color in (('active', 'o-', '#d62728'), ('inactive', 's-', '#2ca02c')):
            ax.plot(c[f'k_{mode}'], [100 * a for a in c[f'accuracy_{mode}']], style, color=color,
                    label=f'{mode} removed')
        ax.set(xlabel='subNNs removed (k)', ylabel='accuracy (%)')
        ax.set_title(f'{c["block"]} (N={c["num_subnns"]}, N_act={c["num_active"]})', fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path, 'SubNN removal: accuracy vs k')


def plot_reliability(path: str, bins: Dict[str, List[Dict]], scores: Optional[Dict[str, Dict]] = None,
                     fit_fraction: Optional[float] = None) -> str:
    """Reliability diagrams (accuracy vs confidence per bin) of several calibrators side by side."""
    fig, axes = plt.subplots(1, len(bins), figsize=(3.6 * len(bins), 3.6), squeeze=False)
    for ax, (name, rel) in zip(axes.flat, bins.items()):
        lower, acc, conf = ([b[k] for b in rel if b['count']] for k in ('lower', 'accuracy', 'confidence'))
        width = rel[0]['upper'] - rel[0]['lower']
        ax.bar(lower, acc, width=width, align='edge', color='#4c72b0', edgecolor='k', lw=0.5, label='accuracy')
        ax.bar(lower, [c - a for c, a in zip(conf, acc)], width=width, bottom=acc, align='edge', color='#d62728',
               alpha=0.35, label='gap')
        ax.plot([0, 1], [0, 1], 'k--', lw=1)
        s = (scores or {}).get(name)
        ax.set_title(name + (f'\nECE {100 * s["ece"]:.2f}%  MCE {100 * s["mce"]:.2f}%' if s else ''), fontsize=9)
        ax.set(xlabel='confidence', ylabel='accuracy', xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7, loc='upper left')
    fit = '' if fit_fraction is None else f', calibrators fitted on {100 * fit_fraction:.0f} %'
    return _save(fig, path, f'Reliability diagrams ({len(rel)} bins, first random split{fit})')
