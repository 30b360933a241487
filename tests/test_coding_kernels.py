"""The Triton kernels of the coded block's energy path (timm_coded.coding_kernels) against the reference ops.

On a CUDA GPU they run natively. Without one they run in Triton's interpreter (TRITON_INTERPRET=1, in a
subprocess because triton reads it at import) wherever `triton` is installed; skipped where neither exists.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.kernel_check import CASES, compare_paths
from timm_coded import coding_kernels

HELPER = Path(__file__).resolve().parent / 'helpers' / 'kernel_check.py'
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (torch.cuda.is_available() and coding_kernels.HAS_TRITON), reason='needs CUDA and triton')
@pytest.mark.parametrize('case', CASES, ids=[f'case{i}' for i in range(len(CASES))])
def test_kernels_match_reference_ops_on_cuda(case):
    compare_paths('cuda', *case)


@pytest.mark.skipif(not coding_kernels.HAS_TRITON, reason='needs triton (CUDA builds of torch ship it)')
def test_kernels_match_reference_ops_in_triton_interpreter():
    env = {**os.environ, 'TRITON_INTERPRET': '1', 'PYTHONPATH': os.pathsep.join(
        [str(ROOT), str(HELPER.parent.parent)] + [p for p in [os.environ.get('PYTHONPATH')] if p])}
    proc = subprocess.run([sys.executable, str(HELPER), 'cpu'], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'{len(CASES)} cases match on cpu' in proc.stdout


def test_kernels_stay_off_for_cpu_tensors_and_wide_groups():
    """Outside the interpreter the reference ops serve CPU tensors; so do groups wider than the kernels take."""
    h = torch.zeros(1, 8, 2, 2)
    if not os.environ.get('TRITON_INTERPRET') == '1':
        assert not coding_kernels.use_kernels(h, 2)
    wide = torch.zeros(1, 2 * (coding_kernels.MAX_GROUP_WIDTH + 1), 2, 2, device='cuda' if torch.cuda.is_available() else 'cpu')
    assert not coding_kernels.use_kernels(wide, 2)
