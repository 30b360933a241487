"""Fetch and load timm's own `tests/test_models.py` for the *installed* timm version.

timm's test-suite is not in the wheel, only in the sdist on PyPI. `load_upstream_test_models()`:

1. downloads the sdist of `timm==timm.__version__` once with
   `pip download --no-deps --no-binary :all:` into `<repo>/.cache/timm-tests/<version>/` (git-ignored),
   extracts only `tests/test_models.py` and `pyproject.toml` (for the marker list), and deletes the tarball;
   later runs find the extracted file and do not touch the network;
2. applies ONE documented source adaptation (`_adapt`): the forward_intermediates tests select models by
   *module* name (`FEAT_INTER_FILTERS`), so the modules that define our models (`coded_resnext`) are added
   to that list. Nothing else of timm's file is changed;
3. imports the adapted file as a module (parametrization happens at import time through `timm.list_models`,
   so `timm_coded` must already be imported: conftest.py does that).

timm's file is Apache-2.0 and is never committed here: it is fetched at test time.
"""
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import List

import timm

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = Path(os.environ.get('TIMM_CODED_TIMM_TESTS_CACHE', REPO_ROOT / '.cache' / 'timm-tests'))
MEMBERS = ('tests/test_models.py', 'pyproject.toml')
MODULE_NAME = 'timm_upstream_test_models'


def cache_dir(version: str = timm.__version__) -> Path:
    return CACHE_ROOT / version


def our_model_names() -> List[str]:
    """Every model that timm_coded registers (by entry-point module), so the filter follows new models too."""
    import timm_coded  # noqa: F401  (registers the models)
    from timm.models import model_entrypoint
    names = [m for m in timm.list_models() if model_entrypoint(m).__module__.split('.')[0] == 'timm_coded']
    assert names, 'import timm_coded registered no models'
    return names


def our_model_modules() -> List[str]:
    """timm's registry keys models by the last component of the defining module (e.g. `coded_resnext`)."""
    from timm.models import model_entrypoint
    return sorted({model_entrypoint(m).__module__.split('.')[-1] for m in our_model_names()})


def _fetch(version: str) -> Path:
    dest = cache_dir(version)
    if all((dest / m).is_file() for m in MEMBERS):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
               '--disable-pip-version-check', '-q', '-d', tmp, f'timm=={version}']
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdists = sorted(Path(tmp).glob(f'timm-{version}.tar.gz'))
        if proc.returncode != 0 or not sdists:
            raise RuntimeError(
                f'Could not download the timm {version} sdist, which carries timm\'s own tests/test_models.py '
                f'(run by tests/timm_suite).\n  command: {" ".join(cmd)}\n  pip said: {proc.stderr.strip()[-2000:]}\n'
                f'Fix: run the tests once with network access to PyPI (the file is then cached in {dest}), or put '
                f'timm-{version}/tests/test_models.py and timm-{version}/pyproject.toml from that sdist at '
                f'{dest}/tests/test_models.py and {dest}/pyproject.toml. To skip timm\'s suite deliberately, '
                f'deselect it: `pytest --ignore=tests/timm_suite`.')
        with tarfile.open(sdists[0]) as tar:
            for member in MEMBERS:
                info = tar.getmember(f'timm-{version}/{member}')
                data = tar.extractfile(info).read()
                out = dest / member
                out.parent.mkdir(parents=True, exist_ok=True)
                out.with_suffix('.part').write_bytes(data)
                os.replace(out.with_suffix('.part'), out)  # atomic: a half-written file is never "cached"
    return dest


def _adapt(source: str) -> str:
    """Add our model modules to FEAT_INTER_FILTERS (module-name filter of the forward_intermediates tests)."""
    anchor = 'FEAT_INTER_FILTERS = [\n'
    if source.count(anchor) != 1:
        raise RuntimeError(f'timm {timm.__version__} tests/test_models.py: expected one `{anchor.strip()}` line to adapt, '
                           f'found {source.count(anchor)}; update tests/timm_suite/_timm_upstream.py::_adapt')
    mods = ', '.join(repr(m) for m in our_model_modules())
    # same line, so line numbers in tracebacks still match the cached file
    return source.replace(anchor, f'FEAT_INTER_FILTERS = [{mods},  # {mods} added by timm-coded tests/timm_suite\n', 1)


def markers(version: str = timm.__version__) -> List[str]:
    """The marker declarations of timm's own pytest config (pyproject.toml), e.g. 'base: marker for ...'."""
    import tomllib
    with open(_fetch(version) / 'pyproject.toml', 'rb') as f:
        return list(tomllib.load(f)['tool']['pytest']['ini_options'].get('markers', []))


def load_upstream_test_models(version: str = timm.__version__) -> ModuleType:
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    path = _fetch(version) / 'tests' / 'test_models.py'
    code = compile(_adapt(path.read_text()), str(path), 'exec')  # tracebacks point at the cached file
    spec = importlib.util.spec_from_loader(MODULE_NAME, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[MODULE_NAME] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    return module
