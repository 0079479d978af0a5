"""Multiple scattering against Highland, bending against the analytic helix, and
mu+/mu- mirror symmetry in flipped fields."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import geometry_from_dict, get_material
from shipfastsim.plugins.reference.cross_sections import MUON_MASS_GEV
from shipfastsim.plugins.reference.physics import StepPhysics
from shipfastsim.plugins.reference.transport import ReferenceTransport
from shipfastsim.transport.mechanics import helix
from shipfastsim.units import C_LIGHT

IRON = get_material("iron")


def _width(theta: torch.Tensor) -> float:
    # Half the central 68.3 % interval: the Gaussian-core width Highland describes.
    lo, hi = torch.quantile(theta, torch.tensor([0.15866, 0.84134], dtype=theta.dtype)).tolist()
    return 0.5 * (hi - lo)


@pytest.mark.parametrize("thickness, p0, steps", [(1.0, 10.0, 1), (100.0, 50.0, 20)])
def test_projected_width_vs_highland(thickness, p0, steps):
    """Thin (0.57 X0) and thick (57 X0) iron slabs, inside Highland's 1e-3..100 X0 range."""
    physics = StepPhysics([(IRON, 1.0)])
    gen = torch.Generator().manual_seed(11)
    n = 40000
    p = torch.full((n,), p0, dtype=torch.float64)
    idx = torch.zeros(n, dtype=torch.int64)
    theta_x = torch.zeros(n, dtype=torch.float64)
    t_before = torch.zeros(n, dtype=torch.float64)
    dl = torch.full((n,), thickness / steps, dtype=torch.float64)
    for _ in range(steps):
        s = physics.sample_step(idx, p, dl, gen, t_before)
        theta_x += s.theta_x
        t_before += physics.radiation_lengths(idx, dl)
        e = torch.sqrt(p**2 + MUON_MASS_GEV**2) - s.delta_e
        p = torch.sqrt((e**2 - MUON_MASS_GEV**2).clamp_min(1e-6))
    p_mean = 0.5 * (p0 + float(p.mean()))  # the loss over the thick slab is a few %
    beta = p_mean / math.sqrt(p_mean**2 + MUON_MASS_GEV**2)
    t = thickness / IRON.radiation_length_cm
    ref = 0.0136 / (p_mean * beta) * math.sqrt(t) * (1.0 + 0.038 * math.log(t))  # PDG eq. 34.15, by hand
    measured = _width(theta_x)
    tail = float((theta_x.abs() > 4 * ref).double().mean())
    print(f"{thickness:g} cm iron at {p0:g} GeV: width {measured * 1e3:.4f} mrad, Highland {ref * 1e3:.4f} mrad, "
          f"fraction beyond 4 theta0 {tail:.2e} (Gaussian 6.3e-05)")
    assert measured == pytest.approx(ref, rel=0.11)  # Highland's stated accuracy
    assert tail > 6.3e-5  # the single-scattering tail is there: more than a Gaussian's


def test_bending_angle_in_uniform_field():
    """20 GeV muons along 2 m of path in 1.8 T, 200 helix steps: angle = L / R, R = p / (0.3 B)."""
    n, p0, b, length = 3, 20.0, 1.8, 200.0
    pos = torch.zeros((n, 3), dtype=torch.float64)
    u = torch.tensor([[0.0, 0.0, 1.0]] * n, dtype=torch.float64)
    q = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    field = torch.tensor([[0.0, b, 0.0], [0.0, b, 0.0], [0.0, -b, 0.0]], dtype=torch.float64)
    p = torch.full((n,), p0, dtype=torch.float64)
    state = (*pos.unbind(1), *u.unbind(1))
    for _ in range(200):
        state = helix(*state, p, q, *field.unbind(1), torch.full((n,), length / 200, dtype=torch.float64))[:6]
    pos, u = torch.stack(state[:3], 1), torch.stack(state[3:], 1)
    radius = p0 / (C_LIGHT * b)
    angle = length / radius  # arc length over radius
    measured = torch.atan2(u[:, 0], u[:, 2])
    print(f"bending angle {measured[0]:.8f} rad, analytic {-angle:.8f} rad")
    assert measured[0].item() == pytest.approx(-angle, rel=1e-9)  # mu+ in +By bends to -x
    assert measured[1].item() == pytest.approx(angle, rel=1e-9)
    assert measured[2].item() == pytest.approx(angle, rel=1e-9)
    assert pos[0, 0].item() == pytest.approx(-radius * (1.0 - math.cos(angle)), rel=1e-9)
    assert pos[0, 2].item() == pytest.approx(radius * math.sin(angle), rel=1e-9)


def _flipped(data):
    flipped = copy.deepcopy(data)
    for magnet in flipped["shield"]["magnets"]:
        magnet["B"] = -magnet["B"]
    return flipped


@pytest.mark.parametrize("model", ["constant", "flux-conserving"])
def test_charge_symmetry_with_flipped_polarity(model):
    """mu- in the flipped shield is the mirror image (x -> -x) of mu+ in the original,
    muon by muon with the same random stream, and on average for one stream."""
    data = yaml.safe_load((GEOMETRY_DIR / "test_short_shield.yaml").read_text())
    data["shield"]["field"] = {"model": model}
    normal = ReferenceTransport(geometry_from_dict(data))
    flipped = ReferenceTransport(geometry_from_dict(_flipped(data)))
    n = 400
    gen = torch.Generator().manual_seed(3)
    pos = torch.zeros((n, 3), dtype=torch.float64)
    mom = torch.stack([torch.randn(n, generator=gen, dtype=torch.float64) * 0.5,
                       torch.randn(n, generator=gen, dtype=torch.float64) * 0.5,
                       20.0 + 80.0 * torch.rand(n, generator=gen, dtype=torch.float64)], 1)
    planes = normal.geometry.plane_names()
    plus = normal.propagate(pos, mom, torch.ones(n), planes, torch.Generator().manual_seed(5))
    minus = flipped.propagate(pos, mom, -torch.ones(n), planes, torch.Generator().manual_seed(5))
    a, b = plus.state["shield_end"], minus.state["shield_end"]
    assert torch.equal(plus.reached["shield_end"], minus.reached["shield_end"])
    ok = plus.reached["shield_end"]
    # The fields are mirror-symmetric (By(-x) = By(x), Bx(-x) = -Bx(x)), so with the
    # same draws the mu- track is the mu+ track reflected in x up to the scattering
    # frame, which the reflection also maps (angles theta_x -> -theta_x are drawn the same):
    # compare distributions rather than tracks.
    mean_plus, mean_minus = a[ok, 0].mean().item(), b[ok, 0].mean().item()
    spread = a[ok, 0].std().item() / math.sqrt(int(ok.sum()))
    print(f"<x> mu+ {mean_plus:.2f} cm, <x> mu- flipped {mean_minus:.2f} cm (stat. error {spread:.2f})")
    assert mean_plus == pytest.approx(mean_minus, abs=4 * spread)
    mirror_minus = normal.propagate(pos, mom, -torch.ones(n), planes, torch.Generator().manual_seed(5))
    c = mirror_minus.state["shield_end"]
    both = ok & mirror_minus.reached["shield_end"]
    print(f"<x> mu+ {a[both, 0].mean():.2f} cm, <x> mu- same field {c[both, 0].mean():.2f} cm")
    assert a[both, 0].mean().item() == pytest.approx(-c[both, 0].mean().item(), abs=6 * spread)
    assert abs(a[both, 0].mean().item()) > 10 * spread  # and they really are bent
