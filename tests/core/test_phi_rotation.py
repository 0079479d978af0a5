import math

import pytest
import torch
from scipy import stats

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.config import make_stage
from shipfastsim.registry import get_registry
from shipfastsim.runner import apply_stage


@pytest.fixture(scope="module")
def rotated(target_sample):
    muons = read_ntuple(target_sample, entry_stop=3000)[0]
    context_generator = torch.Generator().manual_seed(11)
    from shipfastsim.components import ChunkContext

    context = ChunkContext(0, 0, context_generator, torch.device("cpu"))
    out = apply_stage(get_registry(), make_stage("augmenter", "phi-rotation", {"copies": 7}), muons, 0, context)
    return muons, out


def test_invariants_are_kept(rotated):
    muons, out = rotated
    repeated = muons.repeat_interleave(7)
    for name in ("z", "pz", "pdg_id", "event_id"):
        assert torch.equal(getattr(out, name), getattr(repeated, name))
    assert torch.allclose(out.pt, repeated.pt)
    assert torch.allclose(torch.hypot(out.x, out.y), torch.hypot(repeated.x, repeated.y))
    assert torch.allclose(out.weight, repeated.weight / 7)
    assert math.isclose(float(out.weight.sum()), float(muons.weight.sum()), rel_tol=1e-12)


def test_rotation_angles_are_uniform_and_common_to_position_and_momentum(rotated):
    muons, out = rotated
    repeated = muons.repeat_interleave(7)
    dphi = torch.remainder(torch.atan2(out.py, out.px) - torch.atan2(repeated.py, repeated.px), 2 * math.pi)
    statistic, p_value = stats.kstest(dphi.numpy() / (2 * math.pi), "uniform")
    print(f"KS of the rotation angle against uniform: D={statistic:.4f}, p={p_value:.3f}")
    assert p_value > 1e-3
    # The same angle turns the position: cross and dot products relative to momentum are kept.
    cross = lambda b: b.x * b.py - b.y * b.px  # noqa: E731
    assert torch.allclose(cross(out), cross(repeated), atol=1e-9)
