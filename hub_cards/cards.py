""" Model cards (README.md) for Coded ResNeXt checkpoints and for binary classifiers extracted from them.

A card is timm's `generate_readme` (YAML front matter, title, description, "Model Details") followed by the
sections only this model family has: the coding schemes, the training recipe, measured results, usage and the
paper's citation. Every number on a card is either measured here (parameter count, GMACs) or read from what
the caller hands in (training checkpoint args, a metrics JSON file, a BC facts dict); a section whose facts
are absent is left out, never filled with defaults or the paper's figures.

Metrics file (`--metrics results.json`), every key optional, accuracies in percent as timm's validate.py:

    {"dataset": "fashion_mnist", "split": "test", "num_samples": 10000,
     "top1": 91.2, "top5": 99.8,
     "early_decoders": {"layer2.0": 74.1, "layer3.0": 88.5},          # top-1 of each coded block's decoder
     "binary_classifiers": {"Bag": {"precision": 93.0, "recall": 77.0, "f1": 84.0}},
     "calibration": {"ece": 1.9, "nll": 0.31},
     "notes": "how the numbers were measured"}

BC facts dict (`binary_classifier_card`): see `BC_FACT_KEYS`; `bc_facts` measures one from a BC extracted with
`timm_coded.analyze.extract_binary_classifier`.
"""
import math
import re
from collections import OrderedDict
from numbers import Real
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from timm.models._hub import generate_readme

from timm_coded.codes import CodingScheme
from timm_coded.coded_resnext import CodedBottleneck, CodedResNeXt

__all__ = [
    'CITATION', 'PAPER_URL', 'BC_FACT_KEYS', 'METRIC_KEYS', 'count_params', 'measure_gmacs', 'validate_metrics',
    'coded_model_card', 'binary_classifier_card', 'bc_facts', 'validate_bc_facts', 'scheme_table',
    'card_front_matter',
]

PAPER_TITLE = 'Towards Disentangling Information Paths with Coded ResNeXt'
PAPER_URL = 'https://arxiv.org/abs/2202.05343'
CITATION = """@inproceedings{avranas2022coded,
  title={Towards Disentangling Information Paths with Coded ResNeXt},
  author={Avranas, Apostolos and Kountouris, Marios},
  booktitle={Advances in Neural Information Processing Systems},
  volume={35},
  year={2022},
  eprint={2202.05343},
  archivePrefix={arXiv}
}"""
CARD_TAGS = ('image-classification', 'timm', 'timm-coded', 'coded-resnext')
TRAIN_ARG_KEYS = (  # timm train.py arguments worth a line in the recipe, in this order
    'dataset', 'epochs', 'batch_size', 'grad_accum_steps', 'opt', 'lr', 'lr_base', 'momentum', 'weight_decay',
    'sched', 'warmup_epochs', 'min_lr', 'smoothing', 'mixup', 'cutmix', 'aa', 'reprob', 'drop', 'drop_path',
    'model_ema', 'model_ema_decay', 'amp', 'amp_dtype', 'coding_loss_weight', 'mu', 'seed',
)
METRIC_KEYS = ('dataset', 'split', 'num_samples', 'top1', 'top5', 'early_decoders', 'binary_classifiers',
               'calibration', 'notes')
BC_FACT_KEYS = OrderedDict([  # key -> (required, meaning)
    ('parent', (True, 'repo id or model name of the Coded ResNeXt the BC was cut from')),
    ('class_index', (True, 'index k of the class the BC recognises')),
    ('class_name', (False, 'name of class k')),
    ('num_params', (True, 'parameters of the BC')),
    ('parent_params', (True, 'parameters of the parent model')),
    ('codewords', (True, '{coded block name: codeword string of class k}')),
    ('input_size', (False, '(C, H, W) the BC takes')),
    ('gmacs', (False, 'measured GMACs of the BC at input_size')),
    ('metrics', (False, '{precision, recall, f1 (percent), positives, negatives (counts), dataset, split, notes}')),
    ('license', (False, 'licence id for the front matter, default apache-2.0')),
    ('dataset', (False, 'Hugging Face dataset id for the front matter')),
])
BC_METRIC_KEYS = ('precision', 'recall', 'f1', 'positives', 'negatives', 'dataset', 'split', 'notes')
_PERCENT_KEYS = ('top1', 'top5')


# --- measuring -------------------------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as codebooks and BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def measure_gmacs(model: nn.Module, input_size: Sequence[int]) -> float:
    """Multiply-accumulates of one forward pass on one (C, H, W) image, in G, counted by torch's FlopCounterMode.

    FlopCounterMode counts 2 FLOPs per MAC for convolutions and matmuls (the energy quadratic forms included).
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(1, *input_size, device=param.device if param is not None else None,
                        dtype=param.dtype if param is not None else None)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


def fmt_num(value: Any) -> str:
    """How numbers appear on cards: ints as they are, floats with up to 4 significant decimals, no trailing 0s."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f'{value:.4g}'


def _size_str(size: Sequence[int]) -> str:
    return ' x '.join(str(int(s)) for s in size[-2:])


# --- metrics ---------------------------------------------------------------------------------------------
def _check_number(where: str, value: Any, percent: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f'Metrics: {where} must be a finite number, got {value!r}.')
    if percent and not 0 <= value <= 100:
        raise ValueError(f'Metrics: {where} = {value} is not a percentage in [0, 100] (write 91.2, not 0.912).')


def validate_metrics(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """Check a metrics dict against the documented schema (module docstring); unknown keys are errors."""
    if not isinstance(metrics, Mapping):
        raise ValueError(f'Metrics must be a JSON object, got {type(metrics).__name__}.')
    unknown = sorted(set(metrics) - set(METRIC_KEYS))
    if unknown:
        raise ValueError(f'Metrics: unknown key(s) {unknown}; allowed: {list(METRIC_KEYS)} (see hub_cards.cards).')
    for key in ('dataset', 'split', 'notes'):
        if key in metrics and not isinstance(metrics[key], str):
            raise ValueError(f'Metrics: {key} must be a string, got {metrics[key]!r}.')
    if 'num_samples' in metrics and (not isinstance(metrics['num_samples'], int) or metrics['num_samples'] <= 0):
        raise ValueError(f'Metrics: num_samples must be a positive integer, got {metrics["num_samples"]!r}.')
    for key in _PERCENT_KEYS:
        if key in metrics:
            _check_number(key, metrics[key], percent=True)
    for name, acc in dict(metrics.get('early_decoders', {})).items():
        _check_number(f'early_decoders[{name!r}]', acc, percent=True)
    for cls, bc in dict(metrics.get('binary_classifiers', {})).items():
        if not isinstance(bc, Mapping) or not bc:
            raise ValueError(f'Metrics: binary_classifiers[{cls!r}] must be an object such as '
                             f'{{"precision": 93.0, "recall": 77.0}}.')
        _validate_bc_metrics(bc, f'binary_classifiers[{cls!r}]')
    for key, value in dict(metrics.get('calibration', {})).items():
        _check_number(f'calibration[{key!r}]', value)
    return dict(metrics)


def _validate_bc_metrics(bc: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(bc) - set(BC_METRIC_KEYS))
    if unknown:
        raise ValueError(f'{where}: unknown key(s) {unknown}; allowed: {list(BC_METRIC_KEYS)}.')
    for key in ('precision', 'recall', 'f1'):
        if key in bc:
            _check_number(f'{where}.{key}', bc[key], percent=True)
    for key in ('positives', 'negatives'):
        if key in bc and (not isinstance(bc[key], int) or bc[key] < 0):
            raise ValueError(f'{where}.{key} must be a count (integer >= 0), got {bc[key]!r}.')


# --- shared pieces ---------------------------------------------------------------------------------------
def card_front_matter(details: Dict[str, Any], title: str, description: str, license: str = 'apache-2.0',
                      extra_tags: Sequence[str] = ()) -> str:
    """timm's README head: YAML front matter (tags, pipeline_tag, library_name, license, datasets), title,
    description and the "Model Details" list."""
    card = dict(tags=list(CARD_TAGS) + list(extra_tags), license=license, description=description, details=details)
    return generate_readme(card, title, task_name='image-classification')


def scheme_table(schemes: Mapping[str, CodingScheme], blocks: Mapping[str, str]) -> str:
    """Markdown table, one row per coding scheme: blocks, K, N, N_act, H_min, column sums, sha256."""
    rows = ['| Ratio r | Coded blocks | K | N | N_act | Min. Hamming distance | Column sums (S_min-S_max) '
            '| Balance spread (best possible) | sha256 |',
            '|---|---|---|---|---|---|---|---|---|']
    for key, s in schemes.items():
        q = s.quality()
        names = ', '.join(f'`{b}`' for b, k in blocks.items() if k == key) or '-'
        rows.append(f'| {s.ratio_str} | {names} | {s.num_classes} | {s.num_subnns} | {s.num_active} '
                    f'| {s.min_distance} | {s.s_min}-{s.s_max} | {q["spread"]} ({q["ideal_spread"]}) '
                    f'| `{s.fingerprint()[:16]}` |')
    return '\n'.join(rows)


def _codeword_table(schemes: Mapping[str, CodingScheme], label_names: Optional[Sequence[str]]) -> str:
    keys = list(schemes)
    head = '| Class | ' + ' | '.join(schemes[k].ratio_str for k in keys) + ' |'
    rows = [head, '|---|' + '---|' * len(keys)]
    strings = {k: schemes[k].to_strings() for k in keys}
    for c in range(next(iter(schemes.values())).num_classes):
        name = f'{c}: {label_names[c]}' if label_names else str(c)
        rows.append(f'| {name} | ' + ' | '.join(f'`{strings[k][c]}`' for k in keys) + ' |')
    return '\n'.join(rows)


def _table(header: Tuple[str, ...], rows: List[Tuple[Any, ...]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(fmt_num(v) for v in row) + ' |' for row in rows]
    return '\n'.join(lines)


# --- Coded ResNeXt card ----------------------------------------------------------------------------------
def _coding_section(model: CodedResNeXt, label_names: Optional[Sequence[str]]) -> str:
    schemes = model.coding_schemes()
    stages = ', '.join(f'`{n}` {r}' for n, r in zip(model.stage_names, model.coding_ratios))
    text = ['\n## Coding schemes\n',
            f'Stage ratios r = N_act/N (N = {model.num_subnns} subNNs per block; N/N means an ordinary '
            f'ResNeXt stage): {stages}.\n']
    if not schemes:
        text.append('\nThis checkpoint has no coded block (every ratio is N/N): it is a plain ResNeXt.\n')
        return ''.join(text)
    blocks = {n: m.coding_key for n, m in model.named_modules() if isinstance(m, CodedBottleneck)}
    text += ['\nIn a coded block, class k may only use the subNNs marked 1 in its codeword; the codebooks were '
             'fixed before training. Balance = how evenly the classes share the subNNs (S_max - S_min of the '
             'column sums).\n\n', scheme_table(schemes, blocks), '\n']
    if next(iter(schemes.values())).num_classes <= 32:
        text += ['\nCodewords (column n = subNN n):\n\n', _codeword_table(schemes, label_names), '\n']
    text.append('\nThe codebooks are uploaded beside the weights as `codebooks.json` (one `CodingScheme.to_json()` '
                'per ratio) and are stored in the weights as the `codebooks.*` buffers; loading checks that '
                'both agree.\n')
    return ''.join(text)


def _training_section(train_info: Mapping[str, Any]) -> str:
    args = dict(train_info.get('args') or {})
    rows = [(k, args[k]) for k in TRAIN_ARG_KEYS if args.get(k) not in (None, '', False)]
    if train_info.get('epoch') is not None:
        rows.append(('checkpoint epoch', train_info['epoch']))
    if train_info.get('metric') is not None:
        rows.append((f'checkpoint eval metric ({args.get("eval_metric", "eval_metric")})', train_info['metric']))
    if train_info.get('ema'):
        rows.append(('weights', 'EMA (state_dict_ema)'))
    if not rows:
        return ''
    lines = ['\n## Training\n', '\nFrom the training checkpoint (timm `CheckpointSaver`):\n\n',
             _table(('Setting', 'Value'), rows), '\n']
    return ''.join(lines)


def _results_section(metrics: Mapping[str, Any]) -> str:
    where = ' '.join(str(metrics[k]) for k in ('dataset', 'split') if metrics.get(k))
    lines = ['\n## Results\n']
    intro = 'Measured' + (f' on {where}' if where else '')
    if metrics.get('num_samples'):
        intro += f' ({metrics["num_samples"]} images)'
    lines.append(f'\n{intro}; accuracies in percent.\n\n')
    rows = [(k, metrics[k]) for k in _PERCENT_KEYS if k in metrics]
    if rows:
        lines += [_table(('Metric', 'Value'), rows), '\n']
    if metrics.get('early_decoders'):
        lines += ['\nEarly decoders (prediction from the energies of one coded block, no further layers):\n\n',
                  _table(('Coded block', 'Top-1'), list(metrics['early_decoders'].items())), '\n']
    if metrics.get('binary_classifiers'):
        cols = [k for k in ('precision', 'recall', 'f1', 'positives', 'negatives')
                if any(k in v for v in metrics['binary_classifiers'].values())]
        rows = [(cls, *(bc.get(k, '-') for k in cols)) for cls, bc in metrics['binary_classifiers'].items()]
        lines += ['\nExtracted binary classifiers:\n\n', _table(('Class', *cols), rows), '\n']
    if metrics.get('calibration'):
        lines += ['\nCalibration:\n\n', _table(('Measure', 'Value'), list(metrics['calibration'].items())), '\n']
    if metrics.get('notes'):
        lines.append(f'\n{metrics["notes"]}\n')
    return ''.join(lines)


def _usage_section(repo_id: str, model: CodedResNeXt, has_bc: bool) -> str:
    code = [
        'import timm',
        'import timm_coded  # registers the Coded ResNeXt architectures with timm',
        '',
        f"model = timm.create_model('hf-hub:{repo_id}', pretrained=True).eval()",
        'cfg = timm.data.resolve_data_config({}, model=model)',
        'transform = timm.data.create_transform(**cfg)',
        'logits = model(transform(img).unsqueeze(0))  # img: a PIL image',
    ]
    if model.coded_blocks():
        code += ['',
                 '# early predictions: one (B, K) score tensor per coded block, from the forward pass above',
                 'early = timm_coded.early_decode(model)']
    if has_bc:
        code += ['', "# a binary classifier for class k: only the subNNs of k's codewords, (B, 1) logit",
                 'from timm_coded.analyze import extract_binary_classifier',
                 'bc = extract_binary_classifier(model, k)']
    if model.coded_blocks():
        code += ['', '# fine-tune to K2 new classes: codebooks for K2 classes replace the saved ones',
                 f"model = timm.create_model('hf-hub:{repo_id}', pretrained=True, num_classes=K2, codebooks={{}})"]
    return ('\n## Model Usage\n\n```python\n' + '\n'.join(code) + '\n```\n\n'
            '`hub_cards.load.create_model_from_hub(...)` does the same and also checks `codebooks.json` against the '
            'weights and refuses pickled weights unless `allow_pickle=True`.\n')


def coded_model_card(
        model: CodedResNeXt,
        repo_id: str,
        input_size: Sequence[int],
        test_input_size: Optional[Sequence[int]] = None,
        label_names: Optional[Sequence[str]] = None,
        dataset: Optional[str] = None,
        train_info: Optional[Mapping[str, Any]] = None,
        metrics: Optional[Mapping[str, Any]] = None,
        license: str = 'apache-2.0',
) -> str:
    """README.md for a Coded ResNeXt checkpoint.

    Args:
        model: The model as it will be uploaded (built by timm, so `pretrained_cfg['architecture']` is set).
        repo_id: 'ORG/NAME' it goes to (title and usage).
        input_size: (C, H, W) of the exported data config; GMACs are measured there.
        test_input_size: Optional test-time size; GMACs measured there too.
        label_names: Class names (codeword table).
        dataset: Hugging Face dataset id for the front matter; none is guessed.
        train_info: {'args': dict of train.py args, 'epoch', 'metric', 'ema'} from a training checkpoint.
        metrics: Measured results (module docstring schema).
    """
    arch = model.pretrained_cfg.get('architecture', type(model).__name__)
    params = count_params(model)
    details: Dict[str, Any] = OrderedDict()
    details['Model Type'] = 'Image classification / interpretable backbone (Coded ResNeXt)'
    details['Architecture'] = f'`{arch}` (timm-coded)'
    details['Params (M)'] = f'{params / 1e6:.4g} ({params:,} parameters)'
    details['GMACs'] = f'{measure_gmacs(model, input_size):.4g} at {_size_str(input_size)}'
    sizes = f'train = {_size_str(input_size)}'
    if test_input_size is not None and tuple(test_input_size) != tuple(input_size):
        details['GMACs'] += f', {measure_gmacs(model, test_input_size):.4g} at {_size_str(test_input_size)}'
        sizes += f', test = {_size_str(test_input_size)}'
    details['Image size'] = f'{sizes}, {int(input_size[0])} channel(s)'
    details['Classes'] = model.num_classes
    details['Coding ratios'] = ', '.join(model.coding_ratios)
    details['Papers'] = [f'{PAPER_TITLE}: {PAPER_URL}']
    if dataset:
        details['Dataset'] = dataset
    metrics = validate_metrics(metrics) if metrics is not None else None
    description = (
        'A Coded ResNeXt image classifier for timm, packaged with timm-coded. In its coded blocks each class is '
        'routed through a fixed subset of the block\'s parallel branches (subNNs), chosen by a binary codebook '
        'designed with coding theory before training. The energies of those branches give early predictions at '
        'intermediate blocks, and keeping only the subNNs of one class gives a lighter binary classifier for it.')
    text = card_front_matter(details, repo_id.split('/')[-1], description, license=license)
    has_bc = _analyze_has('extract_binary_classifier')
    text += _coding_section(model, label_names)
    if train_info:
        text += _training_section(train_info)
    if metrics:
        text += _results_section(metrics)
    text += _usage_section(repo_id, model, has_bc)
    text += f'\n## Citation\n```bibtex\n{CITATION}\n```\n'
    return text


def _analyze_has(name: str) -> bool:
    """Whether timm_coded.analyze (the interpretability tools) provides `name`: usage shows only what exists."""
    try:
        import timm_coded.analyze as analyze
    except ImportError:
        return False
    return hasattr(analyze, name)


# --- binary-classifier card ------------------------------------------------------------------------------
def bc_facts(
        parent_model: CodedResNeXt,
        bc: nn.Module,
        parent: str,
        input_size: Optional[Sequence[int]] = None,
        label_names: Optional[Sequence[str]] = None,
        metrics: Optional[Mapping[str, Any]] = None,
        dataset: Optional[str] = None,
) -> Dict[str, Any]:
    """Facts for `binary_classifier_card`, measured on a BC from `timm_coded.analyze.extract_binary_classifier`.

    Reads the BC's `class_index` and `kept_subnns` ({block: kept subNN indices}); counts parameters of both
    models and, with `input_size`, measures the BC's GMACs. `metrics` must already be measured.
    """
    blocks = dict(parent_model.named_modules())
    codewords = {}
    for name, keep in bc.kept_subnns.items():
        n = blocks[name].conv2.groups
        codewords[name] = ''.join('1' if i in set(keep) else '0' for i in range(n))
    facts: Dict[str, Any] = dict(parent=parent, class_index=int(bc.class_index), num_params=count_params(bc),
                                 parent_params=count_params(parent_model), codewords=codewords)
    if label_names is not None:
        facts['class_name'] = label_names[facts['class_index']]
    if input_size is not None:
        facts['input_size'] = [int(v) for v in input_size]
        facts['gmacs'] = measure_gmacs(bc, input_size)
    if metrics is not None:
        facts['metrics'] = dict(metrics)
    if dataset:
        facts['dataset'] = dataset
    return facts


def validate_bc_facts(facts: Mapping[str, Any]) -> Dict[str, Any]:
    """Check a BC facts dict against `BC_FACT_KEYS`: required keys present, no unknown keys, sane values."""
    unknown = sorted(set(facts) - set(BC_FACT_KEYS))
    if unknown:
        raise ValueError(f'BC facts: unknown key(s) {unknown}; allowed: {list(BC_FACT_KEYS)}.')
    missing = [k for k, (req, _) in BC_FACT_KEYS.items() if req and facts.get(k) is None]
    if missing:
        raise ValueError('BC facts: missing ' + ', '.join(f'{k} ({BC_FACT_KEYS[k][1]})' for k in missing) + '.')
    for key in ('num_params', 'parent_params'):
        if not isinstance(facts[key], int) or facts[key] <= 0:
            raise ValueError(f'BC facts: {key} must be a positive integer, got {facts[key]!r}.')
    if facts['num_params'] > facts['parent_params']:
        raise ValueError(f'BC facts: num_params ({facts["num_params"]}) exceeds parent_params '
                         f'({facts["parent_params"]}).')
    codewords = facts['codewords']
    if not isinstance(codewords, Mapping) or not codewords or not all(
            isinstance(w, str) and re.fullmatch('[01]+', w) for w in codewords.values()):
        raise ValueError("BC facts: codewords must map coded block names to '0'/'1' strings, e.g. "
                         "{'layer3.0': '0010011000'}.")
    if 'gmacs' in facts:
        _check_number('gmacs', facts['gmacs'])
    if facts.get('metrics') is not None:
        _validate_bc_metrics(facts['metrics'], 'BC facts metrics')
    return dict(facts)


def binary_classifier_card(facts: Mapping[str, Any], repo_id: str) -> str:
    """README.md for a binary classifier extracted from a Coded ResNeXt (facts: see `BC_FACT_KEYS`)."""
    facts = validate_bc_facts(facts)
    k = facts['class_index']
    cls = f'class {k}' + (f' ({facts["class_name"]})' if facts.get('class_name') else '')
    share = facts['num_params'] / facts['parent_params']
    details: Dict[str, Any] = OrderedDict()
    details['Model Type'] = f'Binary classifier for {cls}, extracted from a Coded ResNeXt'
    details['Parent model'] = f'`{facts["parent"]}`'
    details['Params (M)'] = (f'{facts["num_params"] / 1e6:.4g} ({facts["num_params"]:,} parameters, '
                             f'{100 * share:.1f}% of the parent\'s {facts["parent_params"]:,})')
    if facts.get('gmacs') is not None:
        where = f' at {_size_str(facts["input_size"])}' if facts.get('input_size') else ''
        details['GMACs'] = f'{facts["gmacs"]:.4g}{where}'
    if facts.get('input_size'):
        details['Image size'] = f'{_size_str(facts["input_size"])}, {int(facts["input_size"][0])} channel(s)'
    details['Papers'] = [f'{PAPER_TITLE}: {PAPER_URL}']
    if facts.get('dataset'):
        details['Dataset'] = facts['dataset']
    description = (
        f'A binary classifier that decides whether an image shows {cls}. It was cut, without further training, '
        f'from the Coded ResNeXt `{facts["parent"]}` by keeping in every coded block only the subNNs that work '
        f'for class {k} (the 1s of its codeword) and dropping the others.')
    text = card_front_matter(details, repo_id.split('/')[-1], description, license=facts.get('license', 'apache-2.0'),
                             extra_tags=('binary-classification',))
    text += '\n## Codewords kept\n\n' + _table(
        ('Coded block', 'Codeword (1 = kept subNN)', 'Kept'),
        [(f'`{b}`', f'`{w}`', f'{w.count("1")}/{len(w)}') for b, w in facts['codewords'].items()]) + '\n'
    m = facts.get('metrics')
    if m:
        where = ' '.join(str(m[x]) for x in ('dataset', 'split') if m.get(x))
        rows = [(x, m[x]) for x in ('precision', 'recall', 'f1', 'positives', 'negatives') if x in m]
        text += f'\n## Results\n\nMeasured{" on " + where if where else ""}; precision, recall and F1 in percent.\n\n'
        text += _table(('Metric', 'Value'), rows) + '\n'
        if m.get('notes'):
            text += f'\n{m["notes"]}\n'
    if _analyze_has('load_binary_classifier'):
        text += ('\n## Model Usage\n\n```python\nimport timm_coded\nfrom timm_coded.analyze import '
                 f"load_binary_classifier\n\nbc = load_binary_classifier('hf-hub:{repo_id}').eval()\n"
                 f'is_class_{k} = bc(x).squeeze(1) > 0  # x: images preprocessed as for the parent model\n```\n')
    text += f'\n## Citation\n```bibtex\n{CITATION}\n```\n'
    return text
