"""Run timm's own model test-suite (`tests/test_models.py` of the installed timm's sdist) on our models.

* `import timm_coded` registers our models before timm's file is imported (its parametrization calls
  `timm.list_models` at import time);
* registers the pytest markers timm's file uses, read from that sdist's pyproject.toml;
* keeps only the items of timm's tests whose `model_name` is one of our models (every other item, including
  timm's tests hard-wired to timm models, is deselected), minus the ids listed in EXCLUSIONS.md.
The fetch / load logic is in _timm_upstream.py, the collected module is test_timm_models.py.
"""
import fnmatch
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import timm_coded  # noqa: E402,F401  (registers our models with timm)
import _timm_upstream  # noqa: E402

EXCLUSIONS_FILE = HERE / 'EXCLUSIONS.md'
# an exclusion is a list item under "## Excluded tests": - `<test id pattern (* and ? wildcards), e.g. test_model_forward_fx[1-coded_resnext50_32x4d]>`: <reason>
_EXCLUSION_RE = re.compile(r'^\s*[-*]\s+`([^`]+)`\s*[:\u2014-]\s*(\S.*)$')


def read_exclusions():
    """{pattern: reason} from the list under `## Excluded tests` in EXCLUSIONS.md; an entry needs a reason."""
    out, in_section = {}, False
    for line in EXCLUSIONS_FILE.read_text().splitlines():
        if line.startswith('## '):
            in_section = line.strip() == '## Excluded tests'
        elif in_section and re.match(r'^\s*[-*]\s+`', line):
            m = _EXCLUSION_RE.match(line)
            if not m:
                raise pytest.UsageError(f'{EXCLUSIONS_FILE}: exclusion without a reason: {line.strip()!r}')
            out[m.group(1).replace('[', '[[]')] = m.group(2).strip()  # brackets are literal, wildcards * and ?
    return out


def pytest_configure(config):
    try:
        marker_lines = _timm_upstream.markers()
    except Exception:
        return  # the fetch error is raised, with instructions, when test_timm_models.py is collected
    for line in marker_lines:
        config.addinivalue_line('markers', f'{line} (timm test-suite)')


def pytest_collection_modifyitems(config, items):
    ours = set(_timm_upstream.our_model_names())
    exclusions = read_exclusions()
    keep, drop = [], []
    for item in items:
        if item.path.resolve().parent != HERE:
            keep.append(item)
            continue
        params = getattr(getattr(item, 'callspec', None), 'params', {})
        model = str(params.get('model_name', '')).split('.')[0]  # cfg tests include pretrained tags
        if model in ours and not any(fnmatch.fnmatchcase(item.name, p) for p in exclusions):
            item.add_marker(pytest.mark.slow)  # timm's upstream suite runs in the full suite, not the fast lane
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
