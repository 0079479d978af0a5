"""Materials the shield geometry can name, with what the transport physics needs.

Units: density in g/cm3, mean excitation energy I in eV, atomic mass A in g/mol.
Compounds and mixtures (air, concrete) carry their electron density as <Z/A> for
ionisation and an effective single element (Z_eff, A_eff) for the radiative cross
sections, which is good to a few percent for muon radiative losses.

Density-effect (Sternheimer 1984) parameters and I values are those of the PDG
"Atomic and nuclear properties of materials" pages (muE_*.txt headers).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Material", "MATERIALS", "get_material", "material_names"]


@dataclass(frozen=True)
class Material:
    """One material.

    Attributes:
        name: key used in geometry YAML.
        Z: atomic number (effective for mixtures) for radiative processes.
        A: atomic mass [g/mol] (effective for mixtures).
        density: [g/cm3].
        z_over_a: electrons per nucleon mass <Z/A> [mol/g] for ionisation.
        I_eV: mean excitation energy [eV].
        sternheimer: (a, k, x0, x1, Cbar, delta0) of the density-effect correction.
        radiation_length: X0 [g/cm2] (multiple scattering, Highland).
    """

    name: str
    Z: float
    A: float
    density: float
    z_over_a: float
    I_eV: float
    sternheimer: tuple[float, float, float, float, float, float]
    radiation_length: float

    @property
    def radiation_length_cm(self) -> float:
        """X0 [cm]."""
        return self.radiation_length / self.density


MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("iron", 26.0, 55.845, 7.874, 26.0 / 55.845, 286.0,
                 (0.14680, 2.9632, -0.0012, 3.1531, 4.2911, 0.12), 13.84),
        Material("tungsten", 74.0, 183.84, 19.30, 74.0 / 183.84, 727.0,
                 (0.15509, 2.8447, 0.2167, 3.4960, 5.4059, 0.14), 6.76),
        Material("copper", 29.0, 63.546, 8.960, 29.0 / 63.546, 322.0,
                 (0.14339, 2.9044, -0.0254, 3.2792, 4.4190, 0.08), 12.86),
        Material("air", 7.31, 14.66, 1.205e-3, 0.49919, 85.7,
                 (0.10914, 3.3994, 1.7418, 4.2759, 10.5961, 0.0), 36.62),
        Material("concrete", 11.1, 22.08, 2.300, 0.50274, 135.2,
                 (0.07515, 3.5467, 0.1301, 3.0466, 3.9464, 0.0), 26.57),
    )
}


def get_material(name: str) -> Material:
    """The material called ``name``; KeyError lists the known ones."""
    try:
        return MATERIALS[name]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {sorted(MATERIALS)}") from None


def material_names() -> list[str]:
    """Names of all known materials, sorted."""
    return sorted(MATERIALS)
