"""timm's own tests/test_models.py (fetched for the installed timm version, see _timm_upstream.py), re-exported
here so pytest collects its test functions and fixtures; conftest.py filters the items to our models."""
from _timm_upstream import load_upstream_test_models

_upstream = load_upstream_test_models()
globals().update({k: v for k, v in vars(_upstream).items() if not k.startswith('__')})
