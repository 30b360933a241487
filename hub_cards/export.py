""" The folder that goes to the Hub, and the upload.

The folder is what timm's `save_for_hf` writes (`model.safetensors`, and `config.json` from `save_config_for_hf`, whose
`model_args` rebuild the model from the registered architecture) plus what stock repos lack: the safetensors
`{"format": "pt"}` metadata, the plugin version and the weights' sha256 under `config.json["timm_coded"]`, and the
model card. It is checked by rebuilding the model with `timm.create_model('local-dir:...')` before it is moved into
place.
"""
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import safetensors.torch
import torch
import torch.nn as nn
from huggingface_hub import HfApi, ModelCard, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils.sha import sha_fileobj

import timm
from timm.models._hub import save_config_for_hf

import timm_coded
from timm_coded.codes import get_scheme

__all__ = ['WEIGHTS', 'CONFIG_KEY', 'sha256_file', 'coding_model_args', 'save_for_hub', 'upload_folder']

WEIGHTS = 'model.safetensors'
CONFIG_KEY = 'timm_coded'  # config.json entry with the plugin version and the weights' sha256; timm ignores it


def sha256_file(path: Union[str, Path]) -> str:
    with open(path, 'rb') as f:
        return sha_fileobj(f).hex()


def coding_model_args(model: nn.Module) -> Dict[str, Any]:
    """The coding arguments config.json carries: class count, ratios, and only the codebooks that differ from the
    ones the architecture builds itself (the weights hold every codebook; a repo with none listed here can be
    fine-tuned to a new class count by stock timm)."""
    custom = {s.ratio_str: s.to_strings() for s in model.coding_schemes().values()
              if s.to_strings() != get_scheme(s.num_classes, s.num_subnns, s.num_active).to_strings()}
    return dict(num_classes=model.num_classes, coding_ratios=list(model.coding_ratios), codebooks=custom or None)


def save_for_hub(
        model: nn.Module,
        out_dir: Union[str, Path],
        card: ModelCard,
        data_config: Optional[Mapping[str, Any]] = None,
        label_names: Optional[Sequence[str]] = None,
) -> Path:
    """Write the upload folder (weights, config.json, README.md) into the new or empty folder `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f'{out_dir} exists and is not an empty folder: choose a new folder for the export '
                              f'(nothing was written).')
    if label_names is not None and len(label_names) != model.num_classes:
        raise ValueError(f'{len(label_names)} label names for a model with {model.num_classes} classes.')
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f'.{out_dir.name}.{secrets.token_hex(4)}'
    tmp.mkdir()  # not mkdtemp: a folder with the usual permissions
    try:
        safetensors.torch.save_file(model.state_dict(), tmp / WEIGHTS, metadata={'format': 'pt'})
        config = {'pretrained_cfg': {'hf_hub_filename': WEIGHTS}, 'label_names': label_names, CONFIG_KEY: {
            'version': timm_coded.__version__, 'weights_sha256': {WEIGHTS: sha256_file(tmp / WEIGHTS)}}}
        save_config_for_hf(model, tmp / 'config.json', model_config=config, model_args=coding_model_args(model),
                           data_config=dict(data_config or {}) or None)
        card.save(tmp / 'README.md')
        _verify(tmp, model)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _verify(folder: Path, model: nn.Module) -> None:
    """Rebuild the model from `folder` as users will (timm's `local-dir:`): same weights, same logits."""
    rebuilt = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    ours, theirs = model.state_dict(), rebuilt.state_dict()
    if ours.keys() != theirs.keys() or any(not torch.equal(ours[k].cpu(), theirs[k]) for k in ours):
        raise RuntimeError(f'Export self-check failed: the model rebuilt from {folder} has different weights.')
    x = torch.randn(2, *rebuilt.pretrained_cfg['input_size'], generator=torch.Generator().manual_seed(0))
    was_training = model.training
    with torch.no_grad():
        same = torch.equal(model.eval()(x.to(next(model.parameters()).device)).cpu(), rebuilt(x))
    model.train(was_training)
    if not same:
        raise RuntimeError(f'Export self-check failed: the model rebuilt from {folder} gives different logits.')


def upload_folder(folder: Union[str, Path], repo_id: str, token: Optional[str] = None, private: bool = False,
                  revision: Optional[str] = None, commit_message: str = 'Add model', keep_card: bool = False,
                  overwrite_card: bool = False, endpoint: Optional[str] = None):
    """create_repo + upload_folder (what timm's `push_to_hf_hub` does), refusing to replace an existing card
    unless asked; returns huggingface_hub's CommitInfo. `endpoint`: another Hub than HF_ENDPOINT's."""
    token = token or get_token()
    if not token:
        raise PermissionError('No Hugging Face token: pass --token hf_..., set HF_TOKEN, or run `hf auth login` '
                              'once (--dry-run DIR needs no token).')
    api = HfApi(endpoint=endpoint, token=token, library_name='timm-coded', library_version=timm_coded.__version__)
    try:
        exists = api.repo_exists(repo_id) and api.file_exists(repo_id, 'README.md', revision=revision)
        if exists and not (keep_card or overwrite_card):
            raise FileExistsError(f'{repo_id} already has a README.md (model card). Pass --overwrite-card to replace '
                                  f'it, or --keep-card to upload the weights and keep it. Nothing was uploaded.')
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, commit_message=commit_message,
                                 ignore_patterns=['README.md'] if keep_card else None)
    except HfHubHTTPError as e:
        if e.response is not None and e.response.status_code in (401, 403):
            raise PermissionError(f'The Hub refused the token for {repo_id} (HTTP {e.response.status_code}): check '
                                  f'that it is valid and has write access to {repo_id.split("/")[0]!r}.') from None
        raise
