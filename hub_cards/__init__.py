"""Hugging Face Hub tools for Coded ResNeXt, built on timm's `save_for_hf` and huggingface_hub.

* `hub_cards.card`: model cards (`huggingface_hub.ModelCard`, results as `model-index`).
* `hub_cards.export`: the upload folder (`save_for_hub`) and the upload (`upload_folder`).
* `hub_cards.push`: `python -m hub_cards.push` / `push_checkpoint`.
* `hub_cards.load`: `create_model_from_hub`, timm's loading with the checks timm cannot make.
"""
from .load import create_model_from_hub
from .push import push_checkpoint
