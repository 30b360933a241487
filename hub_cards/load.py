""" `create_model_from_hub`: stock `timm.create_model('hf-hub:ORG/NAME' or 'local-dir:PATH', pretrained=True)`,
which loads these repos after `import timm_coded`, after the checks timm cannot make: the repo and its config.json
exist, the weights are complete and match the sha256 recorded in config.json, and config.json fits the weights.
Each error names the cause and the fix. Works offline (HF_HUB_OFFLINE=1) from the Hugging Face cache.
"""
import json
from pathlib import Path
from typing import Any, Optional, Union

import torch.nn as nn
from huggingface_hub import revision_exists
from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

import timm
from timm.models import parse_model_name
from timm.models._hub import download_from_hf, hf_split

from timm_coded.checkpoint import CheckpointError, check_checkpoint

from .export import CONFIG_KEY, WEIGHTS, sha256_file

__all__ = ['create_model_from_hub']

_WEIGHT_FILES = (WEIGHTS, 'pytorch_model.bin')  # what timm's hf-hub loader reads, in its order


def _fetch(source: str, model_id: str, filename: str, cache_dir) -> Optional[Path]:
    """Local path of `filename` of the repo / folder; None if it has no such file."""
    if source == 'local-dir':
        if not Path(model_id).is_dir():
            raise FileNotFoundError(f'No folder {model_id}: pass local-dir:PATH of an exported model folder.')
        path = Path(model_id) / filename
        return path if path.is_file() else None
    try:
        return Path(download_from_hf(model_id, filename, cache_dir=cache_dir))
    except LocalEntryNotFoundError as e:
        if filename == 'config.json':
            raise FileNotFoundError(f'{model_id}: config.json is not in the local Hugging Face cache and the Hub '
                                    f'cannot be reached (offline?). Load it once with network access.') from e
        return None
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        # mirrors (olah) answer "repository not found" for a missing file too: ask whether the repo exists
        repo, revision = hf_split(model_id)
        if filename != 'config.json' or revision_exists(repo, revision or 'main'):
            return None
        raise FileNotFoundError(f'Hub repo {model_id} not found: check the id, or for a private repo set HF_TOKEN '
                                f'(or run `hf auth login`) with read access.') from e
    except EntryNotFoundError:
        return None


def _check_weights(path: Path, config: dict, where: str) -> None:
    """Complete file, and equal to the sha256 recorded at export (repos pushed by stock timm record none)."""
    try:
        check_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointError(f'{where}: {e} Delete the local copy (`hf cache rm`) and load again; if the '
                              f'uploaded file itself is damaged, push the checkpoint again.') from None
    expected = (config.get(CONFIG_KEY) or {}).get('weights_sha256', {}).get(path.name)
    if expected is not None and sha256_file(path) != expected:
        raise CheckpointError(f'{where}: {path.name} differs from the sha256 recorded in config.json ({expected[:16]}'
                              f'...): the file was altered after export. Delete the local copy and load again, or '
                              f'push the checkpoint again.')


def create_model_from_hub(name: str, pretrained: bool = True, cache_dir: Optional[Union[str, Path]] = None,
                          **kwargs: Any) -> nn.Module:
    """`timm.create_model(name, pretrained=...)` for 'hf-hub:ORG/NAME[@rev]' or 'local-dir:PATH', checked first.

    A different `num_classes` (fine-tuning to a new head) builds codebooks for the new class count.
    """
    source, model_id = parse_model_name(name if ':' in name else f'hf-hub:{name}')
    if source not in ('hf-hub', 'local-dir'):
        raise ValueError(f'{name!r} is not a Hub repo or folder: use hf-hub:ORG/NAME or local-dir:PATH.')
    where = f'folder {model_id}' if source == 'local-dir' else f'Hub repo {model_id}'
    config_path = _fetch(source, model_id, 'config.json', cache_dir)
    if config_path is None:
        raise FileNotFoundError(f'{where} has no config.json: it is not a timm model. Export it with '
                                f'python -m hub_cards.push (or timm.models.push_to_hf_hub).')
    config = json.loads(config_path.read_text())
    if kwargs.get('num_classes') not in (None, config.get('num_classes')):
        kwargs.setdefault('codebooks', {})  # the saved codebooks are for the saved class count
    if pretrained:
        weights = next((p for p in (_fetch(source, model_id, f, cache_dir) for f in _WEIGHT_FILES) if p), None)
        if weights is None:
            raise FileNotFoundError(f'{where} has a config.json but no weights ({" or ".join(_WEIGHT_FILES)}): the '
                                    f'upload is incomplete. Push the checkpoint again.')
        _check_weights(weights, config, where)
        kwargs['pretrained_cfg_overlay'] = dict(source=None, hf_hub_id=None, file=str(weights))
    try:
        model = timm.create_model(f'{source}:{model_id}', pretrained=pretrained, cache_dir=cache_dir, **kwargs)
    except (RuntimeError, ValueError) as e:
        if 'Unknown model' in str(e):
            raise
        raise ValueError(f'{where}: config.json does not describe its weights ({e}). The config was edited '
                         f'or comes from another export: restore it, or push the checkpoint again.') from None
    if pretrained:  # the provenance timm records for hf-hub: / local-dir: names
        model.pretrained_cfg.update(source=source, file=model_id if source == 'local-dir' else None,
                                    hf_hub_id=model_id if source == 'hf-hub' else None)
    return model
