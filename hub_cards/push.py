""" Push a Coded ResNeXt training checkpoint to the Hugging Face Hub with its model card.

    python -m hub_cards.push --checkpoint output/train/.../model_best.pth.tar --repo-id ORG/NAME \\
        [--private] [--token T] [--metrics results.json] [--label-names a,b,...] [--dry-run DIR]

The model is rebuilt from the checkpoint (`timm_coded.checkpoint.model_from_checkpoint`), written with
`hub_cards.export.save_for_hub` and uploaded with huggingface_hub. `--dry-run DIR` writes exactly the folder
that would be uploaded and needs no token. An existing README.md on the Hub is kept unless `--overwrite-card`.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Union

from huggingface_hub.utils import validate_repo_id
from timm.utils import ParseKwargs

from timm_coded.analyze import BinaryClassifier, save_binary_classifier
from timm_coded.analyze.loading import resolve_eval_config
from timm_coded.checkpoint import model_from_checkpoint

from .card import binary_classifier_card, coded_model_card
from .export import save_for_hub, upload_folder

__all__ = ['push_checkpoint', 'push_binary_classifier', 'main']


def _read_json(path: Union[str, Path], what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f'{what} {path} not found.') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'{what} {path} is not valid JSON: {e}.') from None


def push_checkpoint(
        checkpoint: Union[str, Path], repo_id: str, token: Optional[str] = None, private: bool = False,
        metrics: Optional[Union[str, Path, Mapping[str, Any]]] = None, dry_run: Optional[Union[str, Path]] = None,
        model_name: Optional[str] = None, model_kwargs: Optional[Mapping[str, Any]] = None, use_ema: bool = False,
        label_names: Optional[Sequence[str]] = None, overwrite_card: bool = False, keep_card: bool = False,
        revision: Optional[str] = None, commit_message: str = 'Add Coded ResNeXt checkpoint',
        endpoint: Optional[str] = None,
):
    """Export `checkpoint` and upload it to `repo_id`; with `dry_run`, write the folder there instead.

    Returns the dry-run folder, or huggingface_hub's CommitInfo. Every check (repo id, checkpoint, metrics,
    export self-check, token, existing card) runs before anything is uploaded.
    """
    validate_repo_id(repo_id)
    if overwrite_card and keep_card:
        raise ValueError('Choose one of --overwrite-card and --keep-card.')
    if metrics is not None and not isinstance(metrics, Mapping):
        metrics = _read_json(metrics, 'Metrics file')  # checked by the card
    model, args, _ = model_from_checkpoint(checkpoint, model_name, model_kwargs, use_ema)
    data_config = resolve_eval_config(model, args)  # the training preprocessing, channels as the model's
    card = coded_model_card(model, repo_id, data_config['input_size'], label_names=label_names, train_args=args,
                            metrics=metrics)
    if dry_run is not None:
        return save_for_hub(model, dry_run, card, data_config=data_config, label_names=label_names)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_for_hub(model, Path(tmp) / 'export', card, data_config=data_config, label_names=label_names)
        return upload_folder(folder, repo_id, token=token, private=private, revision=revision,
                             commit_message=commit_message, keep_card=keep_card, overwrite_card=overwrite_card,
                             endpoint=endpoint)


def push_binary_classifier(
        bc: BinaryClassifier, repo_id: str, label_name: Optional[str] = None, parent: Optional[str] = None,
        metrics: Optional[Mapping[str, float]] = None, **upload_kwargs,
):
    """Upload a binary classifier (the files of `save_binary_classifier`) with its model card; returns the CommitInfo.

    `parent`: the source model's repo id or name for the card (default its architecture); `metrics`: precision /
    recall / f1 in percent; `upload_kwargs`: token, private, revision, commit_message, keep_card, overwrite_card,
    endpoint, as `push_checkpoint`.
    """
    validate_repo_id(repo_id)
    input_size = (bc.in_chans, *bc.pretrained_cfg.get('input_size', (3, 224, 224))[1:])
    card = binary_classifier_card(bc, parent or bc.source_architecture, repo_id, input_size, label_name, metrics)
    upload_kwargs.setdefault('commit_message', f'Add binary classifier of class {bc.class_index}')
    with tempfile.TemporaryDirectory() as tmp:
        save_binary_classifier(bc, tmp, label_name)
        card.save(Path(tmp) / 'README.md')
        return upload_folder(tmp, repo_id, **upload_kwargs)


def _label_names(value: Optional[str]) -> Optional[List[str]]:
    """A JSON list file, or names separated by commas."""
    if value is None:
        return None
    if Path(value).is_file():
        names = _read_json(value, '--label-names file')
        if not isinstance(names, list):
            raise ValueError(f'--label-names file {value} must hold a JSON list of class names.')
        return [str(n) for n in names]
    return [n.strip() for n in value.split(',')]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m hub_cards.push', description=__doc__.split('\n\n')[0].strip())
    p.add_argument('--checkpoint', required=True, help='timm training checkpoint (.pth.tar) or state_dict file')
    p.add_argument('--repo-id', required=True, help='ORG/NAME on the Hub')
    p.add_argument('--private', action='store_true', help='create the repo private')
    p.add_argument('--token', default=None, help='Hub token (default: $HF_TOKEN or the stored login)')
    p.add_argument('--metrics', default=None, help='measured results JSON for the card (schema: hub_cards.card)')
    p.add_argument('--dry-run', metavar='DIR', default=None, help='write the upload folder to DIR, upload nothing')
    p.add_argument('--model', dest='model_name', metavar='MODEL', help='architecture, if the checkpoint lacks it')
    p.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs, help='create_model kwargs, k=v')
    p.add_argument('--use-ema', action='store_true', help='export the EMA weights (state_dict_ema)')
    p.add_argument('--label-names', default=None, help='class names: comma-separated, or a JSON list file')
    p.add_argument('--overwrite-card', action='store_true', help='replace an existing README.md on the Hub')
    p.add_argument('--keep-card', action='store_true', help='upload without README.md, keeping the existing card')
    p.add_argument('--revision', default=None, help='branch to push to (default main)')
    p.add_argument('--commit-message', default='Add Coded ResNeXt checkpoint')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = push_checkpoint(**dict(vars(args), label_names=_label_names(args.label_names)))
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as e:  # CheckpointError is a ValueError
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.dry_run is not None:
        print(f'wrote {result} (nothing uploaded): ' + ', '.join(sorted(p.name for p in Path(result).iterdir())))
    else:
        print(f'pushed to {result.commit_url}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
