"""The kernel's catastrophic losses and the reference physics without them, against the cross sections.

The expected values are integrals of the cross sections above the cut (the fixture
``above_cut`` of conftest.py): the interaction rate and the mean loss."""

import math

import numpy as np
import pytest
import torch

from shipfastsim.geometry import get_material
from shipfastsim.plugins.fast_shield import DEFAULT_TABLES
from shipfastsim.plugins.fast_shield.kernel_sampler import catastrophic_loss, sampler_arrays
from shipfastsim.plugins.fast_shield.tables import load_tables
from shipfastsim.plugins.reference.physics import StepPhysics
from shipfastsim.transport.jit import muon_key, numba, uniform

V_CAT = 0.05  # the shipped tables' TableSettings.v_catastrophic
IRON = get_material("iron")


@pytest.mark.parametrize("energy", [20.0, 300.0])
def test_rate_and_mean_loss_are_the_cross_sections(energy, above_cut):
    """10^6 steps of 40 cm of iron (`kernel_sampler.catastrophic_loss`): the fraction that
    interacts is rate rho L (binomial, 4 sigma), the mean catastrophic loss E b rho L (4
    sigma of its sample error)."""
    n, length = 1_000_000, 40.0
    tables = load_tables(DEFAULT_TABLES)
    assert tables.settings.v_catastrophic == V_CAT
    arrays = sampler_arrays(tables, [("iron", 1.0)], np.array([IRON.density]))

    @numba().njit
    def draw(out, seed):
        for i in range(out.shape[0]):
            key = muon_key(seed, i)
            out[i] = catastrophic_loss(arrays, 0, energy, length, uniform(key, 0), key, 1)[0]

    drawn = np.empty(n)
    draw(drawn, np.uint64(4))
    loss = torch.from_numpy(drawn[drawn > 0])
    hit = loss
    rate, fraction = above_cut(energy)
    expected = rate * IRON.density * length
    assert hit.numel() / n == pytest.approx(expected, abs=4 * math.sqrt(expected / n))
    assert (loss >= V_CAT * energy * (1 - 1e-6)).all() and (loss <= energy).all()
    mean = float(loss.double().sum()) / n
    error = math.sqrt(float((loss.double() ** 2).sum()) / n / n)
    assert mean == pytest.approx(energy * fraction * IRON.density * length, abs=4 * error)


def test_reference_without_catastrophic_losses_loses_that_much_less(above_cut):
    """The reference's mean loss over 10 cm of iron at 100 GeV drops by exactly the
    catastrophic part when it leaves the losses above V_CAT out (4 sigma), and no
    single step then loses much more than V_CAT E."""
    n, energy, length = 400_000, 100.0, 10.0
    p = torch.full((n,), math.sqrt(energy**2 - 0.1056583755**2), dtype=torch.float64)
    means = {}
    for v_max in (None, V_CAT):
        physics = StepPhysics([(IRON, 1.0)], v_max=v_max)
        step = physics.sample_step(torch.zeros(n, dtype=torch.int64), p, torch.full((n,), length),
                                   torch.Generator().manual_seed(6))
        means[v_max] = step.delta_e
    _, fraction = above_cut(energy)
    dropped = float(means[None].mean() - means[V_CAT].mean())
    error = float(means[None].std()) / math.sqrt(n)  # the catastrophic losses dominate the spread
    assert dropped == pytest.approx(energy * fraction * IRON.density * length, abs=4 * error)
    assert float(means[V_CAT].max()) < 0.2 * energy  # nothing catastrophic is left
