""" Model cards for Coded ResNeXt checkpoints and for binary classifiers cut from them.

A card is a `huggingface_hub.ModelCard`: front matter from `ModelCardData` (library `timm`, the measured results
as `model-index` through `EvalResult`), then the install line and import, the model's details, its coding
schemes, the training settings, the measured results and usage. Every number on a card is measured here
(parameters, GMACs) or handed in (training args, a metrics file); a section without facts is left out.

Metrics file (`--metrics results.json`), every key optional, accuracies in percent:

    {"dataset": "fashion_mnist", "split": "test", "num_samples": 10000, "top1": 91.2, "top5": 99.8,
     "early_decoders": {"layer2.0": 74.1, "layer3.0": 88.5},
     "binary_classifiers": {"mean": {"precision": 93.0, "recall": 77.0, "f1": 84.0}},
     "notes": "how the numbers were measured"}
"""
import math
from numbers import Real
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch.nn as nn
from huggingface_hub import EvalResult, ModelCard, ModelCardData

import timm_coded
from timm_coded.analyze import count_flops, count_parameters
from timm_coded.analyze.report import markdown_table as _table
from timm_coded.codes import CodingScheme

__all__ = ['METRIC_KEYS', 'validate_metrics', 'coded_model_card', 'binary_classifier_card']

PAPER = 'Towards Disentangling Information Paths with Coded ResNeXt: https://arxiv.org/abs/2202.05343'
CITATION = """@inproceedings{avranas2022coded,
  title={Towards Disentangling Information Paths with Coded ResNeXt},
  author={Avranas, Apostolos and Kountouris, Marios},
  booktitle={Advances in Neural Information Processing Systems},
  volume={35},
  year={2022}
}"""
TAGS = ['image-classification', 'timm', 'timm-coded', 'coded-resnext']
METRIC_KEYS = ('dataset', 'split', 'num_samples', 'top1', 'top5', 'early_decoders', 'binary_classifiers', 'notes')
BC_METRIC_KEYS = ('precision', 'recall', 'f1')
TRAIN_ARG_KEYS = ('dataset', 'epochs', 'batch_size', 'opt', 'lr', 'momentum', 'weight_decay', 'sched', 'warmup_epochs',
                  'min_lr', 'smoothing', 'mixup', 'cutmix', 'aa', 'reprob', 'drop_path', 'model_ema', 'amp',
                  'coding_loss_weight', 'drop_subnn', 'train_per_class', 'seed')


def _percent(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not 0 <= value <= 100:
        raise ValueError(f'Metrics: {where} = {value!r} is not a percentage in [0, 100] (write 91.2, not 0.912).')


def validate_metrics(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """Check a metrics dict against the schema of the module docstring; unknown keys are errors."""
    if not isinstance(metrics, Mapping):
        raise ValueError(f'Metrics must be a JSON object, got {type(metrics).__name__}.')
    unknown = sorted(set(metrics) - set(METRIC_KEYS))
    if unknown:
        raise ValueError(f'Metrics: unknown key(s) {unknown}; allowed: {list(METRIC_KEYS)} (see hub_cards.card).')
    for key in ('dataset', 'split', 'notes'):
        if key in metrics and not isinstance(metrics[key], str):
            raise ValueError(f'Metrics: {key} must be a string, got {metrics[key]!r}.')
    if 'num_samples' in metrics and (not isinstance(metrics['num_samples'], int) or metrics['num_samples'] <= 0):
        raise ValueError(f'Metrics: num_samples must be a positive integer, got {metrics["num_samples"]!r}.')
    for key in ('top1', 'top5'):
        if key in metrics:
            _percent(key, metrics[key])
    for name, acc in dict(metrics.get('early_decoders', {})).items():
        _percent(f'early_decoders[{name!r}]', acc)
    for name, bc in dict(metrics.get('binary_classifiers', {})).items():
        if not isinstance(bc, Mapping) or not set(bc) <= set(BC_METRIC_KEYS) or not bc:
            raise ValueError(f'Metrics: binary_classifiers[{name!r}] must be an object with keys from '
                             f'{list(BC_METRIC_KEYS)}, e.g. {{"precision": 93.0, "recall": 77.0, "f1": 84.0}}.')
        for key, value in bc.items():
            _percent(f'binary_classifiers[{name!r}].{key}', value)
    return dict(metrics)


def _install_section(code: str) -> str:
    """The plugin install line (the architectures exist in timm only once timm_coded is imported), then `code`."""
    return (f'## Install and load\n\n```bash\npip install "timm-coded=={timm_coded.__version__}"  # or from its '
            f'source: pip install ./timm-coded\n```\n\n```python\n{code}\n```')


def _measured(metrics: Mapping[str, Any]) -> List[Tuple[str, str, Any]]:
    """(metric type, name, value) of every measured result: the card's Results table and its model-index."""
    rows = [('accuracy', f'{k} accuracy', metrics[k]) for k in ('top1', 'top5') if k in metrics]
    rows += [('accuracy', f'early decoder {b} accuracy', v) for b, v in metrics.get('early_decoders', {}).items()]
    rows += [(k, f'binary classifiers ({n}) {k}', v) for n, bc in metrics.get('binary_classifiers', {}).items()
             for k, v in bc.items()]
    return rows


def _card(title: str, sections: List[str], **card_data: Any) -> ModelCard:
    """YAML front matter (`ModelCardData` of a timm model), the title, `sections` and the citation."""
    sections = [f'# {title}', *(s.strip() for s in sections if s), f'## Citation\n\n```bibtex\n{CITATION}\n```']
    data = ModelCardData(library_name='timm', model_name=title, **card_data)
    return ModelCard(f'---\n{data.to_yaml()}\n---\n\n' + '\n\n'.join(sections) + '\n')


def _coding_section(model: nn.Module, label_names: Optional[Sequence[str]]) -> str:
    schemes: Dict[str, CodingScheme] = model.coding_schemes()
    if not schemes:
        return '## Coding schemes\n\nNo coded block (every ratio is N/N): a plain ResNeXt.'
    blocks = {n: b.coding_key for n, b in timm_coded.named_coded_blocks(model)}
    rows = [(s.ratio_str, ', '.join(f'`{b}`' for b, k in blocks.items() if k == key), s.num_classes, s.min_distance,
             f'{s.s_min}-{s.s_max}', f'`{s.fingerprint()[:16]}`') for key, s in schemes.items()]
    text = ['## Coding schemes', f'Stage ratios r = N_act/N: {", ".join(model.coding_ratios)} (N/N is an ordinary '
            f'ResNeXt stage). In a coded block, class k uses only the subNNs marked 1 in its codeword; the codebooks '
            f'were fixed before training and are stored in the weights (`codebooks.*` buffers).',
            _table(('Ratio', 'Coded blocks', 'Classes', 'Min. Hamming distance', 'Column sums', 'sha256'), rows)]
    if next(iter(schemes.values())).num_classes <= 32:
        strings = {k: s.to_strings() for k, s in schemes.items()}
        names = label_names or [str(c) for c in range(model.num_classes)]
        text.append(_table(('Class', *(s.ratio_str for s in schemes.values())),
                           [(f'{c}: {n}', *(f'`{strings[k][c]}`' for k in schemes)) for c, n in enumerate(names)]))
    return '\n\n'.join(text)


def _results_section(metrics: Mapping[str, Any]) -> str:
    where = ' '.join(str(metrics[k]) for k in ('dataset', 'split') if metrics.get(k))
    text = ['## Results', f'Measured{" on " + where if where else ""}'
            + (f' ({metrics["num_samples"]} images)' if metrics.get('num_samples') else '') + '; percent.',
            _table(('Metric', 'Value'), [(name, value) for _, name, value in _measured(metrics)]), metrics.get('notes')]
    return '\n\n'.join(filter(None, text))


def _usage_section(repo_id: str, in_chans: int) -> str:
    mode = 'L' if in_chans == 1 else 'RGB'
    return f'''## Usage

Image classification (this model takes {in_chans}-channel images):

```python
from PIL import Image
import timm, timm_coded

model = timm.create_model('hf-hub:{repo_id}', pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config({{}}, model=model))
img = Image.open('image.png').convert('{mode}')
probs = model(transform(img).unsqueeze(0)).softmax(dim=-1)
early = timm_coded.early_decode(model)  # one (1, K) score tensor per coded block, from that forward pass
```

Feature map extraction:

```python
model = timm.create_model('hf-hub:{repo_id}', pretrained=True, features_only=True).eval()
for fmap in model(transform(img).unsqueeze(0)):
    print(fmap.shape)  # the stem and every stage
```

Image embeddings:

```python
model = timm.create_model('hf-hub:{repo_id}', pretrained=True).eval()
features = model.forward_features(transform(img).unsqueeze(0))  # unpooled, (1, C, H, W)
embedding = model.forward_head(features, pre_logits=True)  # (1, num_features)
```

A binary classifier for class k (only the subNNs of its codewords, a (B, 1) logit):
`timm_coded.analyze.extract_binary_classifier(model, k)`. `hub_cards.create_model_from_hub('hf-hub:{repo_id}')`
loads like timm and also checks the weights against the sha256 in `config.json`.'''


def coded_model_card(
        model: nn.Module, repo_id: str, input_size: Sequence[int], label_names: Optional[Sequence[str]] = None,
        train_args: Optional[Mapping[str, Any]] = None, metrics: Optional[Mapping[str, Any]] = None,
        license: str = 'apache-2.0',
) -> ModelCard:
    """The card of a Coded ResNeXt checkpoint: `input_size` (C, H, W) is where GMACs are measured."""
    metrics = validate_metrics(metrics) if metrics is not None else {}
    arch = model.pretrained_cfg.get('architecture', type(model).__name__)
    name, dataset = repo_id.split('/')[-1], metrics.get('dataset')
    results = [EvalResult(task_type='image-classification', dataset_type=dataset, dataset_name=dataset,
                          dataset_split=metrics.get('split'), metric_type=t, metric_name=n, metric_value=v)
               for t, n, v in _measured(metrics)] if dataset else None  # model-index
    params = count_parameters(model)
    rows = [(k, train_args[k]) for k in TRAIN_ARG_KEYS if (train_args or {}).get(k) not in (None, '', False)]
    details = [('Architecture', f'`{arch}` (timm-coded {timm_coded.__version__})'),
               ('Params (M)', f'{params / 1e6:.4g}'),
               ('GMACs', f'{count_flops(model, input_size) / 2e9:.4g} at {" x ".join(map(str, input_size))}'),
               ('Classes', model.num_classes), ('Coding ratios', ', '.join(model.coding_ratios)), ('Paper', PAPER)]
    sections = [
        'A Coded ResNeXt image classifier for timm. In its coded blocks each class is routed through a fixed subset '
        'of the parallel branches (subNNs), chosen by a binary codebook designed before training; the branch '
        'energies give early predictions, and the subNNs of one class form a lighter binary classifier for it.',
        _install_section(f"import timm, timm_coded  # timm_coded registers the Coded ResNeXt architectures\n"
                         f"model = timm.create_model('hf-hub:{repo_id}', pretrained=True)"),
        '## Model details\n\n' + '\n'.join(f'- **{k}:** {v}' for k, v in details),
        _coding_section(model, label_names),
        '## Training\n\nFrom the training checkpoint:\n\n' + _table(('Setting', 'Value'), rows) if rows else '',
        _results_section(metrics) if metrics else '',
        _usage_section(repo_id, int(input_size[0])),
    ]
    return _card(name, sections, license=license, tags=TAGS, pipeline_tag='image-classification',
                 datasets=[dataset] if dataset else None, eval_results=results or None)


def binary_classifier_card(bc: nn.Module, parent: str, repo_id: str, input_size: Sequence[int],
                           class_name: Optional[str] = None, metrics: Optional[Mapping[str, float]] = None) -> ModelCard:
    """The card of a binary classifier extracted with `timm_coded.analyze.extract_binary_classifier`."""
    for key, value in (metrics or {}).items():
        _percent(key, value)
    k = bc.class_index
    cls = f'class {k}' + (f' ({class_name})' if class_name else '')
    params = count_parameters(bc)
    words = [(f'`{b}`', ', '.join(map(str, keep))) for b, keep in bc.kept_subnns.items()]
    sections = [
        f'A binary classifier for {cls}, cut without further training from the Coded ResNeXt `{parent}` by keeping '
        f'in every coded block only the subNNs of its codeword.',
        _install_section(f"from timm_coded.analyze import load_binary_classifier\n"
                         f"bc = load_binary_classifier('hf-hub:{repo_id}').eval()\n"
                         f'is_class_{k} = bc(x).squeeze(1) > 0  # x: images preprocessed as for the parent model'),
        f'## Model details\n\n- **Params (M):** {params / 1e6:.4g} ({100 * params / bc.source_params:.1f} % of the '
        f'parent\'s)\n- **GMACs:** {count_flops(bc, input_size) / 2e9:.4g} at {" x ".join(map(str, input_size))}\n'
        f'- **Paper:** {PAPER}',
        '## Kept subNNs\n\n' + _table(('Coded block', 'Kept subNNs'), words),
        '## Results\n\n' + _table(('Metric', 'Value (%)'), list(metrics.items())) if metrics else '',
    ]
    return _card(repo_id.split('/')[-1], sections, license='apache-2.0', tags=TAGS + ['binary-classification'])
