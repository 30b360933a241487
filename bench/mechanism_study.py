""" What makes the coding visible on Fashion-MNIST at CPU scale: one setting per run, one thing varied at a time.

A setting trains a Coded ResNeXt and, once per architecture and budget, its plain baseline with the project's
own commands (`python -m train_hooks.train --config fashion_mnist`), then analyses the pair with
`python -m timm_coded.analyze`: BC thresholds chosen on training images, every metric on the whole 10k test
split. Each setting's figures go to `bench/results/mechanism/<setting>.json`; `--report` gathers them into
BENCHMARKS.md.

    python bench/mechanism_study.py --layers 1 3 3 --mu 6 --per-class 2000 --epochs 6
    python bench/mechanism_study.py --report
"""
import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from timm_coded.analyze.report import markdown_table, pct
from train_hooks.main_job import run_stages

from common import ROOT, machine_info, write_section

OUT = ROOT / 'output' / 'mechanism'             # checkpoints, logs and analysis reports (not tracked)
RESULTS = ROOT / 'bench' / 'results' / 'mechanism'  # one JSON per setting (tracked): what `--report` reads


def run_name(args: argparse.Namespace, coded: bool = True) -> str:
    """The name of the setting's coded run or (coded=False) of its plain baseline: every option that varies."""
    arch = (args.model if coded else args.baseline) + ('-L' + ''.join(map(str, args.layers)) if args.layers else '')
    coding = extra = ''
    if coded:
        ratios = '-r' + '_'.join(r.replace('/', 'o') for r in args.coding_ratios) if args.coding_ratios else ''
        coding = f'{ratios}-mu{args.mu:g}-p{args.drop_subnn:g}'
        extra = '-x' + ''.join(c if c.isalnum() else '_' for c in args.extra) if args.extra else ''
    batch = f'-b{args.batch_size}' if args.batch_size else ''
    return f'{arch}{coding}-n{args.per_class}-e{args.epochs}{batch}-s{args.seed}{extra}'


def run(cmd: List[str], log: Path, threads: Optional[int]) -> float:
    """Run a command (output to `log`) with `main_job.run_stages`; returns its wall time in seconds."""
    timings: Dict[str, float] = {}
    run_stages({log.stem: cmd}, log.parent, timings, threads or 0)
    return timings[log.stem]


def train(args: argparse.Namespace, coded: bool) -> Dict[str, Any]:
    """Train the setting's coded net or its baseline once; a second call for the same run (another setting's
    baseline) waits for the first."""
    out, name = Path(args.out) / 'train', run_name(args, coded)
    done, lock = out / name / 'train_seconds.json', out / f'{name}.lock'
    out.mkdir(parents=True, exist_ok=True)
    while not done.exists():
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            time.sleep(30)
            continue
        model = args.model if coded else args.baseline
        cmd = [sys.executable, '-m', 'train_hooks.train', '--config', 'fashion_mnist', '--model', model,
               '--train-per-class', str(args.per_class), '--val-per-class', '100', '--epochs', str(args.epochs),
               '--seed', str(args.seed), '--workers', '0', '--log-interval', '100', '--output', str(out),
               '--experiment', name]
        if args.batch_size:
            cmd += ['--batch-size', str(args.batch_size)]
        if args.layers:
            cmd += ['--model-kwargs', f'layers={tuple(args.layers)}']
        if coded:
            cmd += ['--coding-loss-weight', f'{args.mu:g}', '--drop-subnn', f'{args.drop_subnn:g}']
            if args.coding_ratios:
                cmd += ['--coding-ratios', *args.coding_ratios]
            cmd += shlex.split(args.extra)
        seconds = run(cmd, out / f'{name}.log', args.threads)
        done.write_text(json.dumps({'seconds': seconds, 'command': shlex.join(cmd[1:])}))
        lock.unlink()
    return json.loads(done.read_text())


def summarize(results: Dict[str, Any]) -> Dict[str, Any]:
    """The study's figures from an analysis results.json."""
    mean = results['binary_classifiers']['mean']
    row = {'top1': results['accuracy'], 'baseline_top1': results['baseline_accuracy'],
           **{f'bc_{kind}': mean[kind]['val'] for kind in ('coded', 'plain', 'full_logit', 'plain_full_logit')}}
    row['gap'] = row['bc_coded']['f1'] - row['bc_plain']['f1']
    dec = results['early_decoders']
    row['decoders'] = dict(zip(dec['blocks'], dec['accuracy']))
    row['removal'] = {c['block']: {'k0': c['accuracy_active'][0], 'active1': c['accuracy_active'][1],
                                   'inactive1': c['accuracy_inactive'][1]} for c in results['removal']}
    row['bc_param_share'] = results['binary_classifiers']['cost']['param_share']
    row['per_class'] = {c['name']: {'coded': c['coded']['val']['f1'], 'plain': c['plain']['val']['f1']}
                        for c in results['binary_classifiers']['classes']}
    return row


def study(args: argparse.Namespace) -> None:
    out = Path(args.out)
    name, base = run_name(args), run_name(args, coded=False)
    if not (out / 'train' / f'{base}.lock').exists():  # baseline first, unless another setting is training it
        train(args, coded=False)
    coded = train(args, coded=True)
    plain = train(args, coded=False)  # done, or being trained by another setting
    layers = args.layers or (1, 1, 1)
    removal = [f'layer{s + 1}.{layers[s] - 1}' for s in (1, 2)]
    report = out / 'analysis' / name
    cmd = [sys.executable, '-m', 'timm_coded.analyze', '--checkpoint', str(out / 'train' / name / 'last.pth.tar'),
           '--baseline-model', args.baseline, '--baseline-checkpoint', str(out / 'train' / base / 'last.pth.tar'),
           '--dataset', 'fashion_mnist', '--train-samples', str(args.train_samples), '--ood-dataset', 'none',
           '--calibration-repeats', '2', '--removal-blocks', *removal, '--output', str(report)]
    report.mkdir(parents=True, exist_ok=True)
    seconds = run(cmd, report / 'analyze.log', args.threads)
    row = summarize(json.loads((report / 'results.json').read_text()))
    row.update(setting=name, baseline=base, train_seconds=coded['seconds'], baseline_seconds=plain['seconds'],
               analyze_seconds=seconds, threads=args.threads,
               command='python bench/mechanism_study.py ' + shlex.join(sys.argv[1:]),
               args={k: v for k, v in vars(args).items() if k not in ('report', 'out', 'results', 'baseline_only')})
    path = Path(args.results) / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=1))
    print(json.dumps({k: row[k] for k in ('setting', 'top1', 'baseline_top1', 'gap')}))


def _bc(bc: Dict[str, float]) -> str:
    return f'{bc["f1"]:.3f} ({pct(bc["precision"])} / {pct(bc["recall"])})'


def _kept(row: Dict[str, Any], bc: str, full: str) -> str:
    """BC F1 over the full-logit F1 of the same net, in percent."""
    return pct(row[f'bc_{bc}']['f1'] / row[f'bc_{full}']['f1'])


def report(results: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(results.glob('*.json'))]
    lines = ['## Mechanism study: Fashion-MNIST, coded vs plain extraction (`bench/mechanism_study.py`)', '',
             f'- Machine: {machine_info()}',
             '- Each row: one Coded ResNeXt and its plain baseline, trained by the same recipe (`fashion_mnist`, '
             'overrides in the row), last epoch. BC threshold: maximum F1 on class-balanced training images; '
             'precision / recall / F1 on the whole test split (1000 positives, 9000 negatives per class), mean over '
             'the 10 classes. "plain" = the same subNN masks applied to the plain baseline. "kept" = BC F1 / '
             'full-logit F1 of the same net (%): how much of the net\'s own class-logit F1 its extraction keeps. '
             'Removal: accuracy after removing one random active / inactive subNN (of each sample\'s class) from the '
             'last block of stages 2 and 3. Train minutes: wall time at 1 thread per run while 2-4 runs (at times '
             'also a CI run) shared the 2 cores (a record of what each run took here, not the time of the recipe on '
             'an idle machine).', '']
    header = ['setting', 'top-1 coded / plain', 'BC F1 coded (P / R)', 'BC F1 plain (P / R)', 'gap',
              'full-logit F1 coded / plain', 'kept coded / plain', 'early decoders',
              'removal k=1 active / inactive (k=0)', 'train min coded / plain']
    table = [[f'`{r["setting"]}`', f'{pct(r["top1"])} / {pct(r["baseline_top1"])}', _bc(r['bc_coded']),
              _bc(r['bc_plain']), f'{r["gap"]:+.3f}',
              f'{r["bc_full_logit"]["f1"]:.3f} / {r["bc_plain_full_logit"]["f1"]:.3f}',
              f'{_kept(r, "coded", "full_logit")} / {_kept(r, "plain", "plain_full_logit")}',
              ', '.join(pct(a) for a in r['decoders'].values()),
              '; '.join(f'{b}: {pct(v["active1"])} / {pct(v["inactive1"])} ({pct(v["k0"])})'
                        for b, v in r['removal'].items()),
              f'{r["train_seconds"] / 60:.0f} / {r["baseline_seconds"] / 60:.0f}{" *" if r.get("note") else ""}']
             for r in rows]
    lines.append(markdown_table(header, table))
    if any(r.get('note') for r in rows):
        lines += ['', '\\* see the note after its command.']
    lines += ['', *per_class_gaps(rows), *budget_curve(rows), 'Commands:', '']
    lines += [f'- `{r["setting"]}`: `{r["command"]}`' + (f' ({r["note"]})' if r.get('note') else '') for r in rows]
    return '\n'.join(lines)


def per_class_gaps(rows: List[Dict[str, Any]]) -> List[str]:
    """Lines of a table: each class's gap (coded BC F1 - plain BC F1) and plain BC F1, per setting."""
    rows = [r for r in rows if 'per_class' in r]
    if not rows:
        return []
    names = list(rows[0]['per_class'])
    table = []
    for r in rows:
        f1 = r['per_class']
        table.append([f'`{r["setting"]}`', *(f'{f1[n]["coded"] - f1[n]["plain"]:+.2f} ({f1[n]["plain"]:.2f})'
                                              for n in names)])
    return ['Per class: the gap (coded BC F1 - plain BC F1), with the plain BC F1 in brackets:', '',
            markdown_table(['setting', *names], table), '']


def budget_curve(rows: List[Dict[str, Any]]) -> List[str]:
    """Lines of a table: gap vs. training budget (images seen) for each architecture / ratios / mu / p_drop / batch /
    seed with more than one budget."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r['setting']):
        a = r['args']
        ratios = f' ratios {",".join(a["coding_ratios"])}' if a.get('coding_ratios') else ''
        batch = f' batch {a["batch_size"]}' if a.get('batch_size') else ''
        groups.setdefault(f'L{"".join(map(str, a["layers"] or (1, 1, 1)))}{ratios} mu {a["mu"]:g} p '
                          f'{a["drop_subnn"]:g}{batch} seed {a["seed"]}', []).append(r)

    def seen(r: Dict[str, Any]) -> int:
        return 10 * r['args']['per_class'] * r['args']['epochs']
    table = [[key, f'{seen(r):,}', f'{pct(r["top1"])} / {pct(r["baseline_top1"])}',
              f'{r["bc_coded"]["f1"]:.3f} / {r["bc_plain"]["f1"]:.3f}', f'{r["gap"]:+.3f}']
             for key, group in groups.items() if len(group) > 1 for r in sorted(group, key=seen)]
    header = ['architecture, ratios, mu, p_drop, batch, seed', 'images seen', 'top-1 coded / plain',
              'BC F1 coded / plain', 'gap']
    return ['Gap vs. budget (images seen = 10 classes x images per class x epochs):', '',
            markdown_table(header, table), ''] if table else []


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', default='coded_resnext11_10x4d')
    p.add_argument('--baseline', default='resnext11_10x4d')
    p.add_argument('--layers', type=int, nargs='+', default=None, help='blocks per stage (model kwarg)')
    p.add_argument('--coding-ratios', nargs='+', default=None)
    p.add_argument('--mu', type=float, default=6.)
    p.add_argument('--drop-subnn', type=float, default=0.1)
    p.add_argument('--per-class', type=int, default=2000, help='training images per class')
    p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--batch-size', type=int, default=None, help="batch of both runs (default: the recipe's, 128)")
    p.add_argument('--extra', default='', help='more train_hooks.train flags for the coded run, one string')
    p.add_argument('--threads', type=int, default=None, help='OMP_NUM_THREADS of each command')
    p.add_argument('--train-samples', type=int, default=5000, help='training images for the BC thresholds')
    p.add_argument('--out', default=str(OUT))
    p.add_argument('--results', default=str(RESULTS), help='folder of the settings JSONs')
    p.add_argument('--report', action='store_true', help='write the BENCHMARKS.md section from saved settings')
    p.add_argument('--baseline-only', action='store_true', help='train the plain baseline of the setting, nothing else')
    args = p.parse_args(argv)
    if args.report:
        write_section('mechanism_study', report(Path(args.results)))
    elif args.baseline_only:
        train(args, coded=False)
    else:
        study(args)


if __name__ == '__main__':
    main()
