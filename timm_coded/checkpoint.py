""" Reading checkpoints safely, and rebuilding the model a training checkpoint was trained as.

Every path that reads a checkpoint (training's --resume / --initial-checkpoint, pretrained_cfg files, the
analysis, Hub export and loading) first calls `check_checkpoint`, so a truncated or corrupt file, or one holding
pickled objects outside torch's weights-only allow-list, fails with one `CheckpointError` naming the file and
the fix. timm then reads the file as usual.
"""
import argparse
import os
import zipfile
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import timm
import torch
import torch.nn as nn
from timm.models import clean_state_dict, resolve_pretrained_cfg

from .layers import parse_ratio

__all__ = ['CheckpointError', 'check_checkpoint', 'check_pretrained_file', 'read_checkpoint',
           'model_from_checkpoint']

_ALLOWED_GLOBALS = {'argparse.Namespace'}  # timm's CheckpointSaver stores the training args as a Namespace


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, truncated or corrupt, or holding disallowed pickled objects."""


def _corrupt(path: str, detail: str) -> CheckpointError:
    return CheckpointError(f'Corrupt or truncated checkpoint {path} ({detail}): copy it again from where it was '
                           f'written, or use another checkpoint.')


def check_checkpoint(path: Union[str, os.PathLike]) -> None:
    """Raise CheckpointError unless `path` is a complete safetensors file, or a PyTorch zip checkpoint whose records
    pass their CRC check and whose pickled objects are tensors, containers and argparse.Namespace only."""
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'Checkpoint {path} not found: pass the path of a .pth.tar / .pth / .safetensors file.')
    if path.endswith('.safetensors'):
        from safetensors import safe_open
        try:
            safe_open(path, framework='pt')  # parses and checks the header
        except Exception as e:  # safetensors raises its own error type for every damaged header
            raise _corrupt(path, str(e)) from None
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _corrupt(path, f'not a complete PyTorch zip archive: {e}') from None
    if bad is not None:
        raise _corrupt(path, f'record {bad} fails its CRC check')
    unsafe = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) - _ALLOWED_GLOBALS)
    if unsafe:
        raise CheckpointError(
            f'Checkpoint {path} holds pickled objects outside the allow-list ({", ".join(unsafe)}); loading them could '
            f'run code, so it is refused. Save its state_dict alone (torch.save(model.state_dict(), ...)) and load '
            f'that.')


def check_pretrained_file(variant: str, pretrained_cfg: Any = None, overlay: Optional[Mapping] = None) -> None:
    """`check_checkpoint` the local weight file a model's pretrained cfg (with `pretrained_cfg_overlay`) names."""
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay)
    if cfg is not None and cfg.file and cfg.source not in ('hf-hub', 'local-dir'):
        check_checkpoint(cfg.file)


def read_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """A checked checkpoint as a dict: timm training checkpoints as saved, state_dicts as {'state_dict': ...}."""
    path = str(path)
    check_checkpoint(path)
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return {'state_dict': load_file(path)}
    with torch.serialization.safe_globals([argparse.Namespace]):
        raw = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(raw, Mapping) and 'state_dict' in raw:
        raw = dict(raw)
        if isinstance(raw.get('args'), argparse.Namespace):
            raw['args'] = vars(raw['args'])
        return raw
    if isinstance(raw, Mapping) and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return {'state_dict': dict(raw)}
    raise CheckpointError(f'{path} is neither a state_dict nor a timm training checkpoint (no "state_dict" entry).')


def model_from_checkpoint(
        path: Union[str, os.PathLike],
        model_name: Optional[str] = None,
        model_kwargs: Optional[Mapping[str, Any]] = None,
        use_ema: bool = False,
) -> Tuple[nn.Module, Dict[str, Any], Dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as and load its weights (strict, codebooks checked).

    The architecture and its kwargs (num_classes, in_chans, --model-kwargs, --coding-ratios, --drop-subnn, the
    codebooks) come from the checkpoint; `model_name` / `model_kwargs` override them. Returns (model in eval
    mode, training args, the checkpoint's other entries: epoch, metric).
    """
    raw = read_checkpoint(path)
    args = dict(raw.get('args') or {})
    key = 'state_dict_ema' if use_ema else 'state_dict'
    if raw.get(key) is None:
        raise CheckpointError(f'{path} has no {key!r} (EMA weights exist only when training used --model-ema).')
    state_dict = clean_state_dict(raw[key])
    trained_as = args.get('model') or raw.get('arch')
    if model_name and trained_as and model_name != trained_as:
        raise ValueError(f'{path} was trained as {trained_as!r}, not {model_name!r}: pass --model {trained_as} (or '
                         f'leave --model out).')
    arch = model_name or trained_as
    if not arch:
        raise ValueError(f'{path} does not name its architecture (a bare state_dict): pass --model NAME.')
    kwargs: Dict[str, Any] = {}
    in_chans = args.get('in_chans') or (args.get('input_size') or [None])[0]
    for name, value, weight, dim in (('in_chans', in_chans, 'conv1.weight', 1),
                                     ('num_classes', args.get('num_classes'), 'fc.weight', 0)):
        if value is None and weight in state_dict:
            value = state_dict[weight].shape[dim]
        if value is not None:
            kwargs[name] = int(value)
    kwargs.update(args.get('model_kwargs') or {})
    for flag, name in (('coding_ratios', 'coding_ratios'), ('drop_subnn', 'drop_subnn_rate')):  # train's flags
        if args.get(flag) is not None:
            kwargs[name] = args[flag]
    # the codebook buffers as {'A/N': codeword strings}: timm records them in model_args, which go to config.json
    codebooks = {'{}/{}'.format(*parse_ratio(k[len('codebooks.'):])): [''.join(map(str, row)) for row in v.tolist()]
                 for k, v in state_dict.items() if k.startswith('codebooks.r')}
    if codebooks:
        kwargs['codebooks'] = codebooks
    kwargs.update(model_kwargs or {})
    model = timm.create_model(arch, pretrained=False, **kwargs)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f'The weights of {path} do not fit {arch} built with the checkpoint\'s settings: {e}\nPass '
                         f'the --model / --model-kwargs the checkpoint was trained with.') from None
    return model.eval(), args, {k: raw.get(k) for k in ('epoch', 'metric')}
