""" Hugging Face Hub tools for Coded ResNeXt, built on timm's `save_for_hf` and huggingface_hub: model cards
(`card`), the upload folder and the upload (`export`), `python -m hub_cards.push` (`push`) and `create_model_from_hub`,
timm's loading with the checks timm cannot make (`load`).
"""
from .load import create_model_from_hub
from .push import push_binary_classifier, push_checkpoint
