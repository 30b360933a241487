""" Load Coded ResNeXt checkpoints from the Hub (`hf-hub:ORG/NAME`) or a folder (`local-dir:PATH`).

After `import timm_coded`, plain `timm.create_model('hf-hub:ORG/NAME', pretrained=True)` already works for
repos written by `hub_cards.push`: config.json rebuilds the model with its codebooks and the weights' codebook
buffers are checked against them. `create_model_from_hub` adds the checks timm cannot make:

* safetensors only, unless `allow_pickle=True` (then `pytorch_model.bin` is read with torch.load(weights_only=True));
* `codebooks.json` must equal the codebooks in the weights;
* clear errors for malformed ids, missing or unreadable weights and codebook mismatches.

Works offline (HF_HUB_OFFLINE=1) from the Hugging Face cache.
"""
import json
import re
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import safetensors
import torch.nn as nn

import timm
from timm.models import parse_model_name

import timm_coded  # noqa: F401  (registers the architectures)
from timm_coded.coded_resnext import CodedResNeXt

from .errors import CodebookMismatchError, CorruptWeightsError, MissingWeightsError, PickleRefusedError, RepoIdError
from .export import CODEBOOKS_FILE, PICKLE_WEIGHTS, SAFE_WEIGHTS, check_codebooks_document

__all__ = ['create_model_from_hub', 'check_repo_id', 'split_model_id']

_REPO_ID = re.compile(r'[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?')
_PICKLE_NAMES = (PICKLE_WEIGHTS, 'pytorch_model.pth', 'model.pth')


def check_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it is 'ORG/NAME' with Hub-valid parts, else raise RepoIdError saying why."""
    if not isinstance(repo_id, str) or repo_id.count('/') != 1:
        raise RepoIdError(f'Malformed repo id {repo_id!r}: write it as ORG/NAME, e.g. my-org/coded_resnext29_10x11d.')
    for part in repo_id.split('/'):
        if not _REPO_ID.fullmatch(part) or '--' in part or '..' in part:
            raise RepoIdError(
                f'Malformed repo id {repo_id!r}: {part!r} must be 1-96 letters, digits, "-", "_" or ".", start and '
                f'end with a letter or digit, and contain no "--" or "..".')
    return repo_id


def split_model_id(name: str) -> Tuple[str, str]:
    """('hf-hub', 'ORG/NAME[@rev]') or ('local-dir', PATH) from a model name; a bare 'ORG/NAME' means the Hub."""
    if ':' not in name and name.count('/') == 1 and not Path(name).exists():
        name = f'hf-hub:{name}'
    try:
        source, model_id = parse_model_name(name)
    except ValueError as e:
        raise RepoIdError(str(e)) from e
    if source is None:
        raise RepoIdError(f'{name!r} is a registry name, not a Hub repo or folder: use hf-hub:ORG/NAME or '
                          f'local-dir:PATH (or timm.create_model({name!r}) for untrained weights).')
    if source == 'hf-hub':
        check_repo_id(model_id.split('@')[0])
    return source, model_id


def _fetch(source: str, model_id: str, filename: str, cache_dir: Optional[Union[str, Path]]) -> Optional[Path]:
    """Local path of `filename` (downloaded / from the cache for the Hub), None if the repo has no such file.

    Call it for config.json first: that establishes the repo exists, so a later "repository not found" (what
    mirrors such as olah answer for a file missing from a repo) means the file is missing.
    """
    if source == 'local-dir':
        path = Path(model_id) / filename
        return path if path.is_file() else None
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
    from timm.models._hub import download_from_hf
    try:
        return Path(download_from_hf(model_id, filename, cache_dir=cache_dir))
    except LocalEntryNotFoundError as e:
        raise MissingWeightsError(
            f'{model_id}: {filename} is not in the local Hugging Face cache and the Hub cannot be reached '
            f'(offline: HF_HUB_OFFLINE=1 or no network). Download it once while online.') from e
    except RepositoryNotFoundError as e:
        if filename == 'config.json':
            raise MissingWeightsError(
                f'Hub repo {model_id} not found: check the id, or for a private repo set HF_TOKEN (or run '
                f'`hf auth login`) with read access.') from e
        return None
    except EntryNotFoundError:
        return None


def _where(source: str, model_id: str) -> str:
    return f'folder {model_id}' if source == 'local-dir' else f'Hub repo {model_id}'


def _check_safetensors(path: Path, where: str) -> None:
    """Open the file's header (also checks the size of the data it announces)."""
    try:
        with safetensors.safe_open(str(path), framework='pt') as f:
            f.keys()
    except Exception as e:
        raise CorruptWeightsError(
            f'{SAFE_WEIGHTS} of {where} is unreadable ({type(e).__name__}: {e}): it is truncated or corrupt. '
            f'Delete the local copy {path} (for the Hub: `hf cache rm` or remove it from HF_HOME) and load again; '
            f'if the uploaded file itself is damaged, push the checkpoint again.') from e


def _resolve_weights(source: str, model_id: str, allow_pickle: bool, cache_dir) -> Path:
    where = _where(source, model_id)
    safe = _fetch(source, model_id, SAFE_WEIGHTS, cache_dir)
    if safe is not None:
        _check_safetensors(safe, where)
        return safe
    pickled = next((p for p in (_fetch(source, model_id, n, cache_dir) for n in _PICKLE_NAMES) if p), None)
    if pickled is None:
        raise MissingWeightsError(f'{where} has a config.json but no weights ({SAFE_WEIGHTS}): the upload is '
                                  f'incomplete. Push the checkpoint again with python -m hub_cards.push.')
    if not allow_pickle:
        raise PickleRefusedError(
            f'{where} only has pickled weights ({pickled.name}); unpickling can run code from the file. Load it with '
            f'allow_pickle=True only if you trust its author (it is then read with torch.load(weights_only=True)), '
            f'or ask for a {SAFE_WEIGHTS} upload.')
    return pickled


def create_model_from_hub(
        name: str,
        pretrained: bool = True,
        allow_pickle: bool = False,
        cache_dir: Optional[Union[str, Path]] = None,
        **kwargs: Any,
) -> nn.Module:
    """`timm.create_model` for Coded ResNeXt repos with safe weights and checked codebooks.

    Args:
        name: 'hf-hub:ORG/NAME[@revision]', 'local-dir:PATH' or 'ORG/NAME'.
        pretrained: Load the weights (False: architecture and codebooks from config.json only).
        allow_pickle: Accept pytorch_model.bin when the repo has no model.safetensors.
        cache_dir: Hugging Face cache folder (default HF_HOME / HF_HUB_CACHE).
        **kwargs: Passed to timm.create_model (e.g. num_classes to fine-tune to a new head).
    """
    source, model_id = split_model_id(name)
    where = _where(source, model_id)
    config = _fetch(source, model_id, 'config.json', cache_dir)
    if config is None:
        raise MissingWeightsError(f'{where} has no config.json: it is not a timm model (push it with '
                                  f'python -m hub_cards.push).')
    saved_classes = json.loads(config.read_text()).get('num_classes')
    if kwargs.get('num_classes') not in (None, saved_classes) and 'codebooks' not in kwargs:
        kwargs['codebooks'] = {}  # new head: the saved K-class codebooks do not apply, build K'-class ones
    overlay = None
    if pretrained:  # timm loads the file checked here (and never probes for a pickle by itself)
        weights = _resolve_weights(source, model_id, allow_pickle, cache_dir)
        overlay = dict(source=None, hf_hub_id=None, file=str(weights))
    try:
        model = timm.create_model(f'{source}:{model_id}', pretrained=pretrained, pretrained_cfg_overlay=overlay,
                                  cache_dir=cache_dir, **kwargs)
    except RuntimeError as e:
        if 'Codebook mismatch' in str(e):
            raise CodebookMismatchError(f'{where}: config.json and the weights disagree. {e}') from e
        raise
    if pretrained:  # record the provenance timm itself records for hf-hub: / local-dir: names
        model.pretrained_cfg.update(source=source, file=model_id if source == 'local-dir' else None,
                                    hf_hub_id=model_id if source == 'hf-hub' else None)
    codebooks = _fetch(source, model_id, CODEBOOKS_FILE, cache_dir)
    if isinstance(model, CodedResNeXt) and model.coded_blocks() and pretrained:
        if codebooks is None:
            raise CodebookMismatchError(f'{where} has no {CODEBOOKS_FILE}: cannot confirm the codebooks of the '
                                        f'weights. Push the checkpoint again with python -m hub_cards.push.')
        if model.num_classes == json.loads(codebooks.read_text()).get('num_classes'):
            check_codebooks_document(model, json.loads(codebooks.read_text()), where)
    return model
