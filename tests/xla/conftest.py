"""XLA lane: these tests need torch_xla and run in the XLA virtualenv (scripts/xla_env.sh, scripts/test.sh).

Where torch_xla is absent they are skipped with that reason, unless TIMM_CODED_REQUIRE_XLA=1 (set by
scripts/test.sh for the XLA lane), where a missing torch_xla fails the run instead of skipping it.
"""
import importlib.util
import os

import pytest

HAVE_XLA = importlib.util.find_spec('torch_xla') is not None
REASON = ('needs torch_xla: run in the XLA virtualenv (`bash scripts/xla_env.sh`, then '
          '`.venv-xla/bin/python -m pytest tests/xla`); `bash scripts/test.sh` does both')


def pytest_collection_modifyitems(config, items):
    if HAVE_XLA:
        return
    mine = [item for item in items if os.path.dirname(str(item.fspath)) == os.path.dirname(__file__)]
    if os.environ.get('TIMM_CODED_REQUIRE_XLA') == '1':
        raise pytest.UsageError(f'TIMM_CODED_REQUIRE_XLA=1 but torch_xla is not installed in {os.sys.executable}: '
                                f'{REASON}.')
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=REASON))
