""" Turn a Coded ResNeXt checkpoint into the folder that goes to the Hub.

The folder is timm's `save_for_hf` output with safetensors weights (`model.safetensors`, `config.json`) plus
`codebooks.json` and the card (`README.md`). `config.json` carries, in `model_args`, what timm needs to rebuild
the model from the registered architecture name: the factory arguments the model was built with, its
`coding_ratios`, `num_classes` and `codebooks` ({'A/N': codeword strings}), so `timm.create_model('hf-hub:...')`
restores the exact codebooks and the weights' codebook buffers are checked against them on load.
`pretrained_cfg.hf_hub_filename` is `model.safetensors`, so timm never falls back to a pickle for these repos.
"""
import argparse
import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import safetensors
import safetensors.torch
import torch

import timm
from timm.models import clean_state_dict, save_for_hf

import timm_coded  # noqa: F401  (registers the architectures)
from timm_coded.coded_resnext import CodedBottleneck, CodedResNeXt

from .errors import CodebookMismatchError, CorruptWeightsError, MissingWeightsError, PickleRefusedError

__all__ = [
    'SAFE_WEIGHTS', 'PICKLE_WEIGHTS', 'CODEBOOKS_FILE', 'CODEBOOKS_FORMAT', 'LoadedCheckpoint', 'read_checkpoint',
    'load_checkpoint_model', 'coding_model_args', 'codebooks_document', 'write_export', 'verify_export',
]

SAFE_WEIGHTS = 'model.safetensors'
PICKLE_WEIGHTS = 'pytorch_model.bin'
CODEBOOKS_FILE = 'codebooks.json'
CODEBOOKS_FORMAT = 'timm-coded-codebooks/1'
DATA_ARG_KEYS = ('input_size', 'img_size', 'in_chans', 'mean', 'std', 'crop_pct', 'crop_mode', 'interpolation')


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint, with what the checkpoint says about its training."""
    model: CodedResNeXt
    args: Dict[str, Any] = field(default_factory=dict)  # train.py args ({} for a bare state_dict)
    epoch: Optional[int] = None
    metric: Optional[float] = None
    ema: bool = False

    @property
    def data_config(self) -> Dict[str, Any]:
        """The preprocessing arguments training used (timm names), for `save_for_hf(data_config=...)`."""
        return {k: self.args[k] for k in DATA_ARG_KEYS if self.args.get(k) is not None}

    @property
    def train_info(self) -> Dict[str, Any]:
        return dict(args=self.args, epoch=self.epoch, metric=self.metric, ema=self.ema)


# --- reading checkpoints ---------------------------------------------------------------------------------
def _torch_load(path: Path, allow_pickle: bool) -> Any:
    """torch.load with weights_only=True (argparse.Namespace allowed: timm's CheckpointSaver stores args)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:
            unsafe = []  # not a zip checkpoint: damaged, or torch's legacy format
        if not unsafe:
            raise CorruptWeightsError(f'Cannot unpickle {path} ({e}). The file is truncated, corrupt or not a '
                                      f'PyTorch checkpoint: copy it again from where it was written.') from e
        if allow_pickle:
            return torch.load(path, map_location='cpu', weights_only=False)
        raise PickleRefusedError(
            f'{path} holds pickled Python objects beyond tensors and argparse.Namespace ({", ".join(unsafe)}); '
            f'unpickling them can run arbitrary code. Convert it to safetensors, or pass --allow-pickle '
            f'(allow_pickle=True) only for a checkpoint you trust.') from e


def read_checkpoint(path: Union[str, Path], allow_pickle: bool = False) -> Dict[str, Any]:
    """Raw checkpoint dict; a safetensors file comes back as {'state_dict': tensors}."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f'Checkpoint {path} not found: pass the path of a checkpoint.pth.tar / '
                                  f'model_best.pth.tar written by timm, or of a .safetensors / .pth state_dict.')
    try:
        if path.suffix == '.safetensors':
            return {'state_dict': safetensors.torch.load_file(str(path), device='cpu')}
        raw = _torch_load(path, allow_pickle)
    except (PickleRefusedError, CorruptWeightsError):
        raise
    except (safetensors.SafetensorError, RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
        raise CorruptWeightsError(
            f'Cannot read checkpoint {path} ({type(e).__name__}: {e}). The file is truncated, corrupt or not a '
            f'PyTorch / safetensors checkpoint: copy it again from where it was written.') from e
    if isinstance(raw, Mapping) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return {'state_dict': dict(raw)}
    if not isinstance(raw, Mapping) or 'state_dict' not in raw:
        raise CorruptWeightsError(
            f'{path} is neither a state_dict nor a timm training checkpoint (no "state_dict" entry); found '
            f'{type(raw).__name__} with keys {sorted(raw)[:8] if isinstance(raw, Mapping) else "-"}.')
    return dict(raw)


def _codebooks_of(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, list]:
    """{'A/N': codeword strings} from the `codebooks.rA_N` buffers of a state_dict."""
    out = {}
    for name, value in state_dict.items():
        if name.startswith('codebooks.r'):
            act, n = name[len('codebooks.r'):].split('_')
            out[f'{act}/{n}'] = [''.join(str(int(b)) for b in row) for row in value.to(torch.uint8).tolist()]
    return out


def _model_kwargs(args: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """create_model kwargs as timm's train.py derives them; missing ones read off the weights."""
    kwargs: Dict[str, Any] = {}
    in_chans = args.get('in_chans') or (args.get('input_size') or (None,))[0]
    if in_chans is None and 'conv1.weight' in state_dict:
        in_chans = int(state_dict['conv1.weight'].shape[1])
    num_classes = args.get('num_classes')
    if num_classes is None and 'fc.weight' in state_dict:
        num_classes = int(state_dict['fc.weight'].shape[0])
    for key, value in (('in_chans', in_chans), ('num_classes', num_classes), ('global_pool', args.get('gp'))):
        if value is not None:
            kwargs[key] = value
    kwargs.update(dict(args.get('model_kwargs') or {}))
    return kwargs


def load_checkpoint_model(
        path: Union[str, Path],
        model_name: Optional[str] = None,
        model_kwargs: Optional[Mapping[str, Any]] = None,
        use_ema: bool = False,
        allow_pickle: bool = False,
) -> LoadedCheckpoint:
    """Rebuild the model a checkpoint was trained as and load its weights (strict, codebooks checked).

    Args:
        path: timm training checkpoint (dict with 'state_dict', 'args', ...) or a bare state_dict file.
        model_name: Registered architecture; default the checkpoint's `args.model`.
        model_kwargs: create_model kwargs overriding those derived from the checkpoint.
        use_ema: Export 'state_dict_ema' instead of 'state_dict'.
        allow_pickle: Permit pickled objects other than tensors / argparse.Namespace (trusted files only).
    """
    raw = read_checkpoint(path, allow_pickle=allow_pickle)
    args = raw.get('args')
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    args = dict(args) if isinstance(args, Mapping) else {}  # other 'args' objects: rely on --model / --model-kwargs
    key = 'state_dict_ema' if use_ema else 'state_dict'
    if key not in raw:
        raise MissingWeightsError(f'{path} has no {key!r} (EMA weights are only saved with --model-ema): '
                                  f'drop --use-ema to export the model weights.')
    state_dict = clean_state_dict(raw[key])
    model_name = model_name or args.get('model')
    if not model_name:
        raise ValueError(f'{path} does not name its architecture (a bare state_dict): pass --model NAME, e.g. '
                         f'--model coded_resnext29_10x11d, and --model-kwargs for a non-default configuration.')
    kwargs = _model_kwargs(args, state_dict)
    codebooks = _codebooks_of(state_dict)
    if codebooks:
        kwargs['codebooks'] = codebooks
    kwargs.update(dict(model_kwargs or {}))
    try:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
    except RuntimeError as e:
        raise ValueError(f'Cannot build {model_name!r}: {e}. Models need `import timm_coded`; '
                         f'see timm.list_models("coded*").') from e
    if not isinstance(model, CodedResNeXt):
        raise ValueError(f'{model_name!r} builds a {type(model).__name__}; hub_cards exports Coded ResNeXt models '
                         f'(timm_coded). Use timm.models.push_to_hf_hub for other timm models.')
    _load_strict(model, state_dict, f'{path} ({key})')
    model.eval()
    metric = raw.get('metric')
    return LoadedCheckpoint(model=model, args=args, epoch=raw.get('epoch'),
                            metric=float(metric) if metric is not None else None, ema=use_ema)


def _load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        if 'Codebook mismatch' in str(e):
            raise CodebookMismatchError(f'{what}: {e}') from e
        raise ValueError(
            f'The weights of {what} do not fit the model built from the checkpoint\'s settings: {e}. Pass the '
            f'architecture arguments the model was trained with (--model, --model-kwargs).') from e


# --- the export folder -----------------------------------------------------------------------------------
def coding_model_args(model: CodedResNeXt) -> Dict[str, Any]:
    """The coding arguments config.json must carry so `create_model` rebuilds the exact coded model."""
    return dict(
        num_classes=model.num_classes,
        coding_ratios=list(model.coding_ratios),
        codebooks={s.ratio_str: s.to_strings() for s in model.coding_schemes().values()},
    )


def codebooks_document(model: CodedResNeXt, label_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Content of codebooks.json: every coding scheme (`CodingScheme.to_json`) keyed by ratio 'A/N'."""
    schemes = {}
    for scheme in model.coding_schemes().values():
        doc = scheme.to_json()
        if label_names is not None and doc.get('class_names') is None:
            doc['class_names'] = list(label_names)
        doc['fingerprint'] = scheme.fingerprint()
        schemes[scheme.ratio_str] = doc
    blocks = {n: m.coding_key[1:].replace('_', '/') for n, m in model.named_modules()
              if isinstance(m, CodedBottleneck)}
    return dict(format=CODEBOOKS_FORMAT, num_classes=model.num_classes, num_subnns=model.num_subnns,
                coding_ratios=list(model.coding_ratios), blocks=blocks, schemes=schemes)


def _check_empty_target(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f'{out_dir} exists and is not an empty folder: choose a new folder for the export '
                              f'(nothing was written).')


def write_export(
        model: CodedResNeXt,
        out_dir: Union[str, Path],
        card: str,
        data_config: Optional[Mapping[str, Any]] = None,
        label_names: Optional[Sequence[str]] = None,
) -> Path:
    """Write the upload folder (weights, config.json, codebooks.json, README.md) atomically, then self-check it.

    The folder is built next to `out_dir` and renamed into place only after `verify_export` rebuilt the model
    from it with timm and got the same weights, codebooks and logits, so a failed export leaves nothing behind.
    """
    out_dir = Path(out_dir)
    _check_empty_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', dir=out_dir.parent))
    try:
        model_config: Dict[str, Any] = {'pretrained_cfg': {'hf_hub_filename': SAFE_WEIGHTS}}
        if label_names is not None:
            if len(label_names) != model.num_classes:
                raise ValueError(f'{len(label_names)} label names for a model with {model.num_classes} classes.')
            model_config['label_names'] = list(label_names)
        save_for_hf(model, tmp, model_config=model_config, model_args=coding_model_args(model),
                    safe_serialization=True, data_config=dict(data_config or {}) or None)
        (tmp / CODEBOOKS_FILE).write_text(json.dumps(codebooks_document(model, label_names), indent=2) + '\n')
        (tmp / 'README.md').write_text(card, encoding='utf-8')
        verify_export(tmp, model)
        _apply_umask(tmp)
        _check_empty_target(out_dir)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _apply_umask(folder: Path) -> None:
    """mkdtemp makes a private folder (and safetensors private files): give them the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~umask)


def verify_export(folder: Union[str, Path], model: CodedResNeXt) -> None:
    """Rebuild the model from `folder` the way users will (timm `local-dir:`) and compare it with `model`."""
    folder = Path(folder)
    rebuilt = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    ours = model.state_dict()
    theirs = rebuilt.state_dict()
    if ours.keys() != theirs.keys() or any(not torch.equal(ours[k].cpu(), theirs[k]) for k in ours):
        raise RuntimeError(f'Export self-check failed: the model rebuilt from {folder} has different weights.')
    doc = json.loads((folder / CODEBOOKS_FILE).read_text())
    check_codebooks_document(rebuilt, doc, str(folder))
    size = rebuilt.pretrained_cfg['input_size']
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            same = torch.equal(model(x.to(next(model.parameters()).device)).cpu(), rebuilt(x))
    finally:
        model.train(was_training)
    if not same:
        raise RuntimeError(f'Export self-check failed: the model rebuilt from {folder} gives different logits.')


def check_codebooks_document(model: CodedResNeXt, doc: Mapping[str, Any], where: str) -> None:
    """Raise CodebookMismatchError unless codebooks.json `doc` holds exactly the model's codebooks."""
    from timm_coded.codes import CodingScheme
    if doc.get('format') != CODEBOOKS_FORMAT:
        raise CodebookMismatchError(f'{where}: {CODEBOOKS_FILE} has format {doc.get("format")!r}, expected '
                                    f'{CODEBOOKS_FORMAT!r}; it was not written by hub_cards.')
    ours = {s.ratio_str: s for s in model.coding_schemes().values()}
    theirs = doc.get('schemes') or {}
    if set(ours) != set(theirs):
        raise CodebookMismatchError(
            f'Codebook mismatch in {where}: {CODEBOOKS_FILE} has schemes {sorted(theirs)}, the weights have '
            f'{sorted(ours)}. Re-export the checkpoint with python -m hub_cards.push.')
    for ratio, scheme in ours.items():
        try:
            other = CodingScheme.from_json(theirs[ratio])
        except (ValueError, KeyError, TypeError) as e:
            raise CodebookMismatchError(f'{where}: {CODEBOOKS_FILE} entry {ratio} is not a valid coding scheme: '
                                        f'{e}') from e
        if not (other.codewords.shape == scheme.codewords.shape and (other.codewords == scheme.codewords).all()):
            raise CodebookMismatchError(
                f'Codebook mismatch in {where} for ratio {ratio}: {CODEBOOKS_FILE} (sha256 {other.fingerprint()[:16]})'
                f' differs from the codebook in the weights (sha256 {scheme.fingerprint()[:16]}). One of the files '
                f'was edited or mixed from two exports; re-export the checkpoint with python -m hub_cards.push.')
