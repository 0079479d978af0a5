"""Per-spill normalisation: what one unit of the weight ``w`` means.

A generator declares how many muons per proton on target (POT) its sample stands
for (`SampleNormalisation`, m).  A run of N generated muons then stands for
``POT_run = N / m`` protons on target, and every generated muon is given the weight

    w = w_generator * m * protons_per_spill / N            [muons per spill]

so that the sum of ``w`` over the generated muons is the expected number of muons
per spill, ``m * protons_per_spill``.  Every later stage keeps weighted totals
unbiased (augmenters split weights, filters divide by their keep probability,
propagators drop the muons that do not arrive), so the sum of ``w`` in the output is
the expected number per spill of the muons it holds.

When a generator's m is unknown the run warns loudly and writes weights *per
generated muon* instead (factor 1: the sum of ``w`` is the number of generated muons
the output stands for); the file and the summary say which unit was used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipfastsim.components import SampleNormalisation
from shipfastsim.units import PROTONS_PER_SPILL_SOURCE, SHIP_PROTONS_PER_SPILL

if TYPE_CHECKING:
    from shipfastsim.config import RunConfig
    from shipfastsim.registry import ComponentRegistry

__all__ = ["SHIP_PROTONS_PER_SPILL", "PROTONS_PER_SPILL_SOURCE", "Normalisation", "UnknownNormalisationWarning",
           "resolve_normalisation"]


class UnknownNormalisationWarning(UserWarning):
    """The generator cannot say how many muons per POT its sample stands for."""


@dataclass(frozen=True)
class Normalisation:
    """The normalisation of one run.

    Attributes:
        generator: the generator component.
        sample: its declared `SampleNormalisation`.
        events: generated muons of the run (N).
        protons_per_spill: POT per spill the weights refer to.
    """

    generator: str
    sample: SampleNormalisation
    events: int
    protons_per_spill: float = SHIP_PROTONS_PER_SPILL

    @property
    def known(self) -> bool:
        return self.sample.muons_per_pot is not None

    @property
    def weight_factor(self) -> float:
        """Factor applied to each generated muon's weight (1 when m is unknown)."""
        if not self.known:
            return 1.0
        return self.sample.muons_per_pot * self.protons_per_spill / self.events

    @property
    def pot_equivalent(self) -> float | None:
        """Protons on target the whole run stands for, N / m (None when unknown)."""
        return self.events / self.sample.muons_per_pot if self.known else None

    @property
    def spills_equivalent(self) -> float | None:
        pot = self.pot_equivalent
        return None if pot is None else pot / self.protons_per_spill

    @property
    def weight_unit(self) -> str:
        if self.known:
            return (f"muons per spill of {self.protons_per_spill:.4g} protons on target "
                    "(sum over all files of the run)")
        return "generated muons (muons per proton on target of the generator unknown)"

    @property
    def warning(self) -> str | None:
        if self.known:
            return None
        return (f"generator {self.generator!r} does not know how many muons per proton on target its sample "
                f"stands for ({self.sample.source}); weights are written PER GENERATED MUON, not per spill")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the run summary and the metadata object of each file."""
        return {
            "generator": self.generator,
            "muons_per_pot": self.sample.muons_per_pot,
            "muons_per_pot_source": self.sample.source,
            "protons_per_spill": self.protons_per_spill,
            "generated_muons": self.events,
            "pot_equivalent": self.pot_equivalent,
            "spills_equivalent": self.spills_equivalent,
            "weight_factor": self.weight_factor,
            "weight_unit": self.weight_unit,
            "per_spill": self.known,
            "warning": self.warning,
        }


def resolve_normalisation(config: RunConfig, registry: ComponentRegistry | None = None,
                          warn: bool = True) -> Normalisation:
    """The normalisation of a validated config, from its generator's declaration.

    ``warn`` emits an `UnknownNormalisationWarning` when the factor is unknown.
    """
    from shipfastsim.registry import get_registry

    generator = config.stages[0]
    registered = (registry or get_registry()).get("generator", generator.component)
    declare = registered.spec.normalisation if registered is not None else None
    if declare is None:
        sample = SampleNormalisation(None, f"generator {generator.component!r} declares no normalisation")
    else:
        sample = declare(generator.params)
    result = Normalisation(generator.component, sample, config.events, config.protons_per_spill)
    if warn and result.warning:
        warnings.warn(result.warning, UnknownNormalisationWarning, stacklevel=2)
    return result
