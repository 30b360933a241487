""" Push a Coded ResNeXt checkpoint to the Hugging Face Hub with its codebooks and model card.

    python -m hub_cards.push --checkpoint output/train/.../model_best.pth.tar --repo-id ORG/NAME \\
        [--private] [--token T] [--metrics results.json] [--dry-run DIR]

What timm's `push_to_hf_hub` does (create_repo, `save_for_hf` with safetensors, upload_folder), plus
`codebooks.json`, a Coded ResNeXt card (`hub_cards.cards`), a self-check that timm rebuilds the exact model from
the folder, and a refusal to replace an existing README.md unless `--overwrite-card` (or `--keep-card` to
upload without touching it). `--dry-run DIR` writes exactly the folder that would be uploaded and stops.
"""
import argparse
import ast
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import timm
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from .cards import coded_model_card, validate_metrics
from .errors import CardExistsError, HubAuthError, HubCardsError, MissingTokenError
from .export import load_checkpoint_model, write_export
from .load import check_repo_id

__all__ = ['push_checkpoint', 'resolve_token', 'main']

DATASET_IDS = {  # timm --dataset values -> Hugging Face dataset ids for the card's front matter
    'torch/cifar10': 'cifar10', 'torch/cifar100': 'cifar100', 'torch/fashion_mnist': 'fashion_mnist',
    'torch/fashionmnist': 'fashion_mnist', 'imagenet': 'imagenet-1k', 'torch/imagenet': 'imagenet-1k',
}


def resolve_token(token: Optional[str]) -> str:
    """The token to upload with: `token`, else $HF_TOKEN, else the one `hf auth login` stored."""
    token = token or get_token()
    if not token:
        raise MissingTokenError(
            'No Hugging Face token: pass --token hf_..., set HF_TOKEN, or run `hf auth login` once. The token needs '
            'write access to the target organisation. (--dry-run DIR needs no token.)')
    return token


def _read_metrics(path: Optional[Union[str, Path]]) -> Optional[Dict[str, Any]]:
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise FileNotFoundError(f'Metrics file {path} not found.') from e
    except json.JSONDecodeError as e:
        raise ValueError(f'Metrics file {path} is not valid JSON: {e}.') from e
    return validate_metrics(data)


def _auth_error(err: HfHubHTTPError, repo_id: str) -> HubCardsError:
    return HubAuthError(
        f'The Hub refused the token for {repo_id} (HTTP {err.response.status_code}): check that it is valid and has '
        f'write access to the organisation {repo_id.split("/")[0]!r}.')


def push_checkpoint(
        checkpoint: Union[str, Path],
        repo_id: str,
        token: Optional[str] = None,
        private: bool = False,
        metrics: Optional[Union[str, Path, Mapping[str, Any]]] = None,
        dry_run: Optional[Union[str, Path]] = None,
        model_name: Optional[str] = None,
        model_kwargs: Optional[Mapping[str, Any]] = None,
        use_ema: bool = False,
        allow_pickle: bool = False,
        label_names: Optional[Sequence[str]] = None,
        dataset: Optional[str] = None,
        overwrite_card: bool = False,
        keep_card: bool = False,
        revision: Optional[str] = None,
        commit_message: str = 'Add Coded ResNeXt checkpoint',
        endpoint: Optional[str] = None,
) -> Union[Path, Any]:
    """Export `checkpoint` and upload it to `repo_id`; with `dry_run`, write the folder there instead.

    Returns the dry-run folder, or huggingface_hub's CommitInfo of the upload. Nothing is uploaded when a
    check fails (token, repo id, existing card, checkpoint, metrics, export self-check).
    """
    check_repo_id(repo_id)
    if overwrite_card and keep_card:
        raise ValueError('Choose one of --overwrite-card and --keep-card.')
    api = None
    if dry_run is None:
        api = HfApi(endpoint=endpoint, token=resolve_token(token), library_name='timm',
                    library_version=timm.__version__)
        try:
            has_card = api.file_exists(repo_id, 'README.md', revision=revision)
        except HfHubHTTPError as e:
            if e.response is not None and e.response.status_code in (401, 403):
                raise _auth_error(e, repo_id) from e
            raise
        if has_card and not (overwrite_card or keep_card):
            raise CardExistsError(
                f'{repo_id} already has a README.md (model card). Pass --overwrite-card to replace it with the '
                f'generated card, or --keep-card to upload the weights and keep it. Nothing was uploaded.')
    metrics = validate_metrics(metrics) if isinstance(metrics, Mapping) else _read_metrics(metrics)
    loaded = load_checkpoint_model(checkpoint, model_name=model_name, model_kwargs=model_kwargs, use_ema=use_ema,
                                   allow_pickle=allow_pickle)
    model = loaded.model
    dataset = dataset or (metrics or {}).get('dataset') or DATASET_IDS.get(str(loaded.args.get('dataset', '')).lower())
    card = _card(model, repo_id, loaded, metrics, label_names, dataset)
    if dry_run is not None:
        return write_export(model, dry_run, card, data_config=loaded.data_config, label_names=label_names)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_export(model, Path(tmp) / 'export', card, data_config=loaded.data_config,
                              label_names=label_names)
        if keep_card:
            (folder / 'README.md').unlink()
        try:
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
            return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                     commit_message=commit_message)
        except HfHubHTTPError as e:
            if e.response is not None and e.response.status_code in (401, 403):
                raise _auth_error(e, repo_id) from e
            raise


def _card(model, repo_id, loaded, metrics, label_names, dataset) -> str:
    from timm.data.model_config import resolve_input_data_config
    data = resolve_input_data_config(model, args=loaded.data_config or None)
    test_size = model.pretrained_cfg.get('test_input_size') if not loaded.data_config else None
    return coded_model_card(model, repo_id, input_size=data['input_size'], test_input_size=test_size,
                            label_names=label_names, dataset=dataset,
                            train_info=loaded.train_info if loaded.args else None, metrics=metrics)


# --- command line ----------------------------------------------------------------------------------------
def _parse_kwargs(items: Optional[List[str]]) -> Dict[str, Any]:
    """timm's --model-kwargs k=v syntax: values are Python literals, else strings."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'--model-kwargs expects key=value items, got {item!r}.')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _parse_label_names(value: Optional[str]) -> Optional[List[str]]:
    """A JSON list file, or names separated by commas."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        names = json.loads(path.read_text())
        if not isinstance(names, list):
            raise ValueError(f'--label-names file {path} must hold a JSON list of class names.')
        return [str(n) for n in names]
    return [n.strip() for n in value.split(',')]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m hub_cards.push', description=__doc__.split('\n\n')[0].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', required=True, help='timm training checkpoint (.pth.tar) or state_dict file')
    p.add_argument('--repo-id', required=True, help='ORG/NAME on the Hub')
    p.add_argument('--private', action='store_true', help='create the repo private')
    p.add_argument('--token', default=None, help='Hub token (default: $HF_TOKEN or the stored login)')
    p.add_argument('--metrics', default=None, help='measured results JSON for the card (hub_cards.cards schema)')
    p.add_argument('--dry-run', metavar='DIR', default=None, help='write the upload folder to DIR, upload nothing')
    p.add_argument('--model', default=None, help='architecture, if the checkpoint does not name it')
    p.add_argument('--model-kwargs', nargs='*', default=None, help='create_model kwargs, key=value')
    p.add_argument('--use-ema', action='store_true', help='export the EMA weights (state_dict_ema)')
    p.add_argument('--allow-pickle', action='store_true',
                   help='accept a checkpoint with pickled objects beyond tensors / argparse.Namespace (trusted only)')
    p.add_argument('--label-names', default=None, help='class names: comma-separated, or a JSON list file')
    p.add_argument('--dataset', default=None, help='Hugging Face dataset id for the card front matter')
    p.add_argument('--overwrite-card', action='store_true', help='replace an existing README.md on the Hub')
    p.add_argument('--keep-card', action='store_true', help='upload without README.md, keeping the existing card')
    p.add_argument('--revision', default=None, help='branch to push to (default main)')
    p.add_argument('--commit-message', default='Add Coded ResNeXt checkpoint')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = push_checkpoint(
            args.checkpoint, args.repo_id, token=args.token, private=args.private, metrics=args.metrics,
            dry_run=args.dry_run, model_name=args.model, model_kwargs=_parse_kwargs(args.model_kwargs),
            use_ema=args.use_ema, allow_pickle=args.allow_pickle, label_names=_parse_label_names(args.label_names),
            dataset=args.dataset, overwrite_card=args.overwrite_card, keep_card=args.keep_card,
            revision=args.revision, commit_message=args.commit_message)
    except (HubCardsError, ValueError, FileNotFoundError, FileExistsError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.dry_run is not None:
        print(f'wrote {result} (nothing uploaded): ' + ', '.join(sorted(p.name for p in Path(result).iterdir())))
    else:
        print(f'pushed to {result.commit_url}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
