"""The stepping kernel's own logic, with a deterministic step sampler (no physics)."""

import math
from typing import NamedTuple

import numpy as np
import pytest
import torch

from shipfastsim.geometry import geometry_from_dict
from shipfastsim.transport import StepSettings
from shipfastsim.transport.jit import jitable
from shipfastsim.transport.kernel import make_kernel
from shipfastsim.transport.kernel_transport import KernelTransport
from shipfastsim.units import C_LIGHT, MUON_MASS
from tests.plugins.fast_shield.conftest import uniform_field_geometry


class FixedLossArrays(NamedTuple):
    fraction: np.ndarray  # (1,) fraction of the energy lost per step


@jitable
def fixed_loss(tab, material, p, energy, length, sigma, key, counter):
    """Loses ``tab.fraction`` of the energy per step, no scattering."""
    return tab.fraction[0] * energy, 0.0, 0.0, 0.0, 0.0, counter


@pytest.fixture(scope="module")
def fixed_loss_kernels():
    return make_kernel(fixed_loss)


@pytest.mark.parametrize("fraction", [0.0, 0.2])
def test_a_step_bends_with_the_mid_step_momentum(fixed_loss_kernels, fraction):
    """One 20 cm step in a uniform 1.5 T field (air): the direction turns by exactly
    C B L / p at the momentum of E - loss / 2 (start momentum: 11 % less for 20 % loss)."""
    geometry = geometry_from_dict(uniform_field_geometry("air", 1.5))
    settings = StepSettings(dense_step=20.0, air_step=20.0, loss_fraction=1.0, max_bend=1.0, control="start")
    transport = KernelTransport(geometry, fixed_loss_kernels, FixedLossArrays(np.array([fraction])), settings)
    p0, z0 = 10.0, 200.0
    pos = torch.tensor([[0.0, 0.0, z0]], dtype=torch.float64)
    mom = torch.tensor([[0.0, 0.0, p0]], dtype=torch.float64)
    _, trace = transport.trace(pos, mom, torch.ones(1, dtype=torch.float64), "end", torch.Generator(), steps=1)
    ux, p = trace[0, 0, 3].item(), trace[0, 0, 6].item()
    energy = math.hypot(p0, MUON_MASS)
    p_mid = math.sqrt((energy * (1 - 0.5 * fraction)) ** 2 - MUON_MASS**2)
    angle = C_LIGHT * 1.5 * 20.0 / p_mid
    # F = q v x B with v along z and B along y points to -x for q > 0.
    assert ux == pytest.approx(-math.sin(angle), rel=1e-9)
    assert p == pytest.approx(math.sqrt((energy * (1 - fraction)) ** 2 - MUON_MASS**2), rel=1e-12)
    assert trace[0, 0, 2].item() == pytest.approx(z0 + 20.0 * math.sin(angle) / angle, rel=1e-9)
