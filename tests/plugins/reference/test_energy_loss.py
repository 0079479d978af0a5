"""Mean energy loss of muons in iron and the shape of its distribution."""

from __future__ import annotations

import pytest
import torch

from shipfastsim.geometry import get_material
from shipfastsim.plugins.reference.cross_sections import MUON_MASS_GEV
from shipfastsim.plugins.reference.physics import StepPhysics

IRON = get_material("iron")
# PDG, "Atomic and nuclear properties of materials", iron (muE_iron_Fe.txt header;
# Groom, Mokhov & Striganov, ADNDT 78 (2001) 183):
PDG_MIN_IONISATION = 1.451e-3  # GeV cm2/g
PDG_MUON_CRITICAL_ENERGY = 347.0  # GeV
# Groom et al. 2001 (and the PDG review, sec. "Muon energy loss at high energy"): the
# photonuclear b(E) is about 0.4e-6 g^-1 cm^2 and nearly energy independent.
PDG_B_PHOTONUCLEAR = 0.4e-6  # g^-1 cm^2
# Published muon energy-loss table of iron in the PDG muE format (columns T, p,
# ionisation, brems, pair, photonuclear, radiative, total, in MeV cm2/g), rows at
# kinetic energy T = 10 GeV, 100 GeV, 1 TeV: the PUMAS v1.1 table dedx/muon/iron.txt
# of the public repository niess/pumas-materials (<Z/A> = 0.46557, I = 286 eV, as in
# the PDG's muE_iron_Fe.txt; the PDG file itself could not be fetched here).
#: T [GeV] -> (ionisation, radiative, total) [MeV cm2/g]
IRON_TABLE = {
    10.0: (1.942, 3.202e-2, 1.974),
    100.0: (2.207, 5.714e-1, 2.778),
    1000.0: (2.428, 7.386, 9.813),
}


@pytest.fixture(scope="module")
def physics():
    return StepPhysics([(IRON, 1.0)], v_cut=0.01, delta_cut=0.01)


def test_minimum_ionisation(physics):
    p = torch.logspace(-1, 1, 800, dtype=torch.float64)
    ion = physics.mean_dedx(0, torch.sqrt(p**2 + MUON_MASS_GEV**2))["ionisation"]
    measured = float(ion.min())
    print(f"minimum ionisation: {measured * 1e3:.4f} MeV cm2/g (PDG {PDG_MIN_IONISATION * 1e3:.3f})")
    assert measured == pytest.approx(PDG_MIN_IONISATION, rel=0.01)


def test_muon_critical_energy(physics):
    T = torch.logspace(1.5, 3.5, 2000, dtype=torch.float64)
    d = physics.mean_dedx(0, T + MUON_MASS_GEV)
    crossing = T[torch.nonzero(d["radiative"] > d["ionisation"])[0]].item()
    print(f"muon critical energy in iron: {crossing:.1f} GeV (PDG {PDG_MUON_CRITICAL_ENERGY})")
    assert crossing == pytest.approx(PDG_MUON_CRITICAL_ENERGY, rel=0.10)


@pytest.mark.parametrize("energy", [10.0, 100.0, 1000.0])
def test_mean_dedx_components(physics, energy):
    d = {k: float(v) * 1e3 for k, v in physics.mean_dedx(0, torch.tensor([energy + MUON_MASS_GEV])).items()}
    print(f"iron, T = {energy:g} GeV [MeV cm2/g]: " + ", ".join(f"{k} {v:.4f}" for k, v in d.items()))
    # Ionisation: between minimum ionisation and the relativistic rise (Fermi plateau + log of W_max).
    assert 1.3 * PDG_MIN_IONISATION * 1e3 < d["ionisation"] < 1.75 * PDG_MIN_IONISATION * 1e3
    b_nucl = d["photonuclear"] / (energy * 1e3)  # g^-1 cm^2
    print(f"  b_photonuclear = {b_nucl * 1e6:.3f}e-6 (Groom et al. ~0.4e-6)")
    if energy >= 100.0:
        assert b_nucl == pytest.approx(PDG_B_PHOTONUCLEAR, rel=0.15)
    # Radiative losses scale ~ E: b grows only logarithmically between 100 GeV and 1 TeV.
    assert d["radiative"] / d["total"] < (0.05 if energy <= 10 else 0.9)
    table = dict(zip(("ionisation", "radiative", "total"), IRON_TABLE[energy], strict=True))
    for part, reference in table.items():
        print(f"  {part}: {d[part]:.4f} vs table {reference:.4f} ({d[part] / reference - 1:+.2%})")
        # A few percent; the radiative part at 10 GeV is 1.6 % of the total, so 5 % there.
        assert d[part] == pytest.approx(reference, rel=0.05 if (part, energy) == ("radiative", 10.0) else 0.03)


def test_sampled_loss_matches_tables_and_has_radiative_tail(physics):
    """1 m of iron at 100 GeV in 10 cm steps: the sampled mean equals the tabulated
    mean dE/dx (the sampler is unbiased), the distribution is Landau-like with a long
    radiative tail."""
    gen = torch.Generator().manual_seed(7)
    n, p0 = 20000, 100.0
    p = torch.full((n,), p0, dtype=torch.float64)
    idx = torch.zeros(n, dtype=torch.int64)
    for _ in range(10):
        step = physics.sample_step(idx, p, torch.full((n,), 10.0, dtype=torch.float64), gen)
        e = torch.sqrt(p**2 + MUON_MASS_GEV**2) - step.delta_e
        p = torch.sqrt((e**2 - MUON_MASS_GEV**2).clamp_min(0))
    loss = torch.sqrt(torch.tensor(p0**2 + MUON_MASS_GEV**2)) - torch.sqrt(p**2 + MUON_MASS_GEV**2)
    expected = float(physics.mean_dedx(0, torch.tensor([p0]))["total"]) * IRON.density * 100.0
    q = torch.quantile(loss, torch.tensor([0.05, 0.5, 0.9, 0.99, 0.999], dtype=torch.float64)).tolist()
    # Reference: PDG most probable ionisation loss (Landau-Vavilov-Bichsel, eq. 34.12) for
    # 787 g/cm2 of iron at beta gamma = 946: xi = 56.3 MeV, Delta_p = 1.34 GeV.
    mpv_ion = 1.344
    hist = torch.histc(loss, bins=200, min=0.0, max=6.0)
    mode = (hist.argmax().item() + 0.5) * 6.0 / 200
    print(f"1 m iron, 100 GeV: mean {loss.mean():.3f} GeV (tables {expected:.3f}), mode {mode:.3f} "
          f"(PDG ionisation MPV {mpv_ion}), quantiles 5/50/90/99/99.9 %: " + ", ".join(f"{v:.3f}" for v in q))
    assert float(loss.mean()) == pytest.approx(expected, rel=0.03)
    assert mpv_ion * 0.95 < mode < expected  # peak near the ionisation MPV, below the mean
    assert q[1] < expected  # median below the mean: skewed
    assert q[3] > 2.5 * q[1] and q[4] > 5.0 * q[1]  # long radiative tail
    assert q[0] > 0.8 * mpv_ion  # and a short low-side: nearly no muon loses much less than the MPV
