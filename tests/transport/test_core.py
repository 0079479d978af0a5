"""The stepping core's own logic, with a deterministic step sampler (no physics)."""

import math

import pytest
import torch

from shipfastsim.geometry import geometry_from_dict
from shipfastsim.transport import StepSettings, Transport
from shipfastsim.units import C_LIGHT, MUON_MASS
from tests.plugins.fast_shield.conftest import uniform_field_geometry


class FixedLoss:
    """Loses ``fraction`` of the energy per step, no scattering."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def sample(self, material, p, energy, length, t_step, generator):
        zero = torch.zeros_like(p)
        return self.fraction * energy, zero, zero, zero, zero


@pytest.mark.parametrize("fraction", [0.0, 0.2])
def test_a_step_bends_with_the_mid_step_momentum(fraction):
    """One 20 cm step in a uniform 1.5 T field (air): the direction turns by exactly
    C B L / p at the momentum of E - loss / 2 (start momentum: 11 % less for 20 % loss)."""
    geometry = geometry_from_dict(uniform_field_geometry("air", 1.5))
    settings = StepSettings(dense_step=20.0, air_step=20.0, loss_fraction=1.0, max_bend=1.0, control="start")
    transport = Transport(geometry, FixedLoss(fraction), settings)
    p0, z0 = 10.0, 200.0
    one = torch.ones(1, dtype=torch.float64)
    state = [0 * one, 0 * one, z0 * one, 0 * one, 0 * one, one, p0 * one, one, 0 * one,
             torch.zeros(1, dtype=torch.int64), transport.geo.segment(z0 * one), 0 * one]
    out = transport._step(*state, torch.Generator())
    energy = math.hypot(p0, MUON_MASS)
    p_mid = math.sqrt((energy * (1 - 0.5 * fraction)) ** 2 - MUON_MASS**2)
    angle = C_LIGHT * 1.5 * 20.0 / p_mid
    # F = q v x B with v along z and B along y points to -x for q > 0.
    assert out[3].item() == pytest.approx(-math.sin(angle), rel=1e-9)
    assert out[6].item() == pytest.approx(math.sqrt((energy * (1 - fraction)) ** 2 - MUON_MASS**2), rel=1e-12)
