"""benchmarks/step_profile.py's classification of steps (the profile of issue 34's note), on a
hand-made trace, and on a real trace: every step of every muon in exactly one class."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def step_profile():
    sys.path.insert(0, str(BENCHMARKS))  # it imports its sibling bench_fast_shield
    try:
        spec = importlib.util.spec_from_file_location("step_profile", BENCHMARKS / "step_profile.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_classes_of_a_hand_made_trace(step_profile):
    """One muon from z = 0 along z with edges at 50 and 100 cm: steps of 40 (long), 10 (to
    the edge at 50), 20 (dense), 25 (between), 5 (to the edge at 100), 3 (short), 40.3 (long:
    above long_step, as no step of the kernel is, still a class), then none."""
    z = np.array([40.0, 50.0, 70.0, 95.0, 100.0, 103.0, 143.3, np.nan])
    trace = np.zeros((1, len(z), 3))
    trace[0, :, 2] = z
    trace[0, -1] = np.nan
    kind, length, segment = step_profile.classify(np.zeros((1, 3)), trace, np.array([-10.0, 50.0, 100.0, 200.0]),
                                                  long_step=40.0, dense_step=20.0)
    assert kind.tolist() == [[1, 0, 2, 3, 0, 4, 1, -1]]
    np.testing.assert_allclose(length[0, :7], [40, 10, 20, 25, 5, 3, 40.3], rtol=1e-12)
    assert segment[0, :7].tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_every_step_of_a_real_trace_is_classified(step_profile):
    """fast-shield through the default shield: the classes add up to each muon's steps."""
    from shipfastsim.plugins.fast_shield import make_transport
    from shipfastsim.plugins.fast_shield.compare import target_sample

    transport = make_transport({})
    batch = target_sample(300, 4)
    start = torch.stack([batch.x, batch.y, batch.z], 1)
    result, trace = transport.trace(start, torch.stack([batch.px, batch.py, batch.pz], 1), batch.charge,
                                    ["shield_end"], torch.Generator().manual_seed(4), 1000)
    kind, _, _ = step_profile.classify(start.numpy(), trace.numpy(), np.asarray(transport.geo.edges), 40.0, 20.0)
    np.testing.assert_array_equal((kind >= 0).sum(1), result.steps_per_muon.numpy())
    # each muon crosses segment edges, and the magnets take long steps
    assert ((kind == 0).sum(1)[result.reached["shield_end"].numpy()] >= 20).all()
    assert (kind == 1).sum() > 0
