"""Hugging Face Hub tools for Coded ResNeXt: model cards, `python -m hub_cards.push`, checked loading.

* `hub_cards.cards`: README.md for Coded ResNeXt checkpoints and extracted binary classifiers.
* `hub_cards.export`: checkpoint -> upload folder (safetensors, config.json, codebooks.json, README.md).
* `hub_cards.push`: the push command / `push_checkpoint`.
* `hub_cards.load`: `create_model_from_hub` (safetensors by default, codebooks checked).
"""
