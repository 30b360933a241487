"""bench/bench_energy_ops.py: every candidate formulation of a coded-op piece gives the model's tensor."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))
import bench_energy_ops  # noqa: E402


@pytest.mark.parametrize('stage', list(bench_energy_ops.STAGES))
def test_candidates_equal_the_model_pieces(stage):
    pieces = bench_energy_ops.cases(2, bench_energy_ops.STAGES[stage], torch.device('cpu'))
    assert sum(len(v) for _, v in pieces) > len(pieces)  # there are candidates besides the model's pieces
    for _, variants in pieces:
        bench_energy_ops.check_equal(variants)


def test_check_equal_names_a_wrong_candidate():
    ref = torch.ones(3)
    with pytest.raises(AssertionError, match='wrong'):
        bench_energy_ops.check_equal({'model': lambda: ref, 'wrong': lambda: ref * 2})
