""" Figures of the analysis report (matplotlib, Agg backend). Each function takes the plotted data as plain
Python values (what the report also stores as JSON) and writes one PNG.
"""
import math
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ['plot_bc_distributions', 'plot_precision_recall', 'plot_decoder_accuracy', 'plot_removal',
           'plot_reliability']

_COLORS = {'positives': '#1f77b4', 'negatives': '#d62728', 'ood': '#ff7f0e'}


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bc_distributions(panels: List[Dict], path: str) -> str:
    """Histograms of binary-classifier outputs: one panel per class with positives, negatives and OOD.

    Each panel: {'title', 'edges', 'counts': {'positives'|'negatives'|'ood': [...] (densities)}, 'threshold'}.
    """
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
    fig.suptitle('Binary-classifier output distributions (density, log scale; validation / OOD)', fontsize=10)
    return _save(fig, path)


def plot_precision_recall(panels: Dict[str, Dict[str, List[Dict]]], path: str) -> str:
    """Precision vs recall of every binary classifier, one panel per evaluation set.

    `panels` maps a panel title to {series label: [{'recall', 'precision', 'class'}]}.
    """
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
    fig.suptitle('Binary classifiers: precision-recall (one point per class)', fontsize=10)
    return _save(fig, path)


def plot_decoder_accuracy(blocks: Sequence[str], accuracy: Sequence[float], final_accuracy: float, path: str) -> str:
    """Accuracy of each early decoder in depth order, with the full network's accuracy as a line."""
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(blocks) + 2), 3.8))
    x = range(len(blocks))
    ax.bar(x, [100 * a for a in accuracy], color='#4c72b0')
    for i, a in enumerate(accuracy):
        ax.text(i, 100 * a + 1, f'{100 * a:.1f}', ha='center', fontsize=8)
    ax.axhline(100 * final_accuracy, color='k', ls='--', lw=1, label=f'full network {100 * final_accuracy:.1f}%')
    ax.set_xticks(list(x), list(blocks), rotation=30, fontsize=8)
    ax.set(ylabel='accuracy (%)', ylim=(0, 105))
    ax.legend(fontsize=8, loc='lower right')
    ax.set_title('Early decoders: accuracy per coded block', fontsize=10)
    return _save(fig, path)


def plot_removal(curves: List[Dict], path: str) -> str:
    """Accuracy vs number of removed subNNs, active vs inactive, one panel per block."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, c in zip(axes.flat, curves):
        ax.plot(c['k_active'], [100 * a for a in c['accuracy_active']], 'o-', color='#d62728',
                label='active removed')
        ax.plot(c['k_inactive'], [100 * a for a in c['accuracy_inactive']], 's-', color='#2ca02c',
                label='inactive removed')
        ax.set(xlabel='subNNs removed (k)', ylabel='accuracy (%)')
        ax.set_title(f'{c["block"]} (N={c["num_subnns"]}, N_act={c["num_active"]})', fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle('SubNN removal: accuracy vs k', fontsize=10)
    return _save(fig, path)


def plot_reliability(reliability: Dict[str, List[Dict]], path: str, scores: Optional[Dict[str, Dict]] = None) -> str:
    """Reliability diagrams (accuracy vs confidence per bin) of several calibrators side by side."""
    fig, axes = plt.subplots(1, len(reliability), figsize=(3.6 * len(reliability), 3.6), squeeze=False)
    for ax, (name, bins) in zip(axes.flat, reliability.items()):
        full = [b for b in bins if b['count']]
        width = bins[0]['upper'] - bins[0]['lower']
        ax.bar([b['lower'] for b in full], [b['accuracy'] for b in full], width=width, align='edge',
               color='#4c72b0', edgecolor='k', lw=0.5, label='accuracy')
        ax.bar([b['lower'] for b in full], [b['confidence'] - b['accuracy'] for b in full], width=width,
               bottom=[b['accuracy'] for b in full], align='edge', color='#d62728', alpha=0.35, label='gap')
        ax.plot([0, 1], [0, 1], 'k--', lw=1)
        s = (scores or {}).get(name)
        ax.set_title(name + (f'\nECE {100 * s["ece"]:.2f}%  MCE {100 * s["mce"]:.2f}%' if s else ''), fontsize=9)
        ax.set(xlabel='confidence', ylabel='accuracy', xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7, loc='upper left')
    fig.suptitle('Reliability diagrams (15 bins, first random split)', fontsize=10)
    return _save(fig, path)
