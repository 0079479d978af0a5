"""Augmenter ``phi-rotation``: the azimuthal symmetry of muon production.

Muon production in the target is symmetric under rotations about the beam axis, so
each muon may be replaced by ``copies`` copies rotated by independent uniform
angles phi, each with weight w / copies.  Position (x, y) and momentum (px, py)
rotate together, which keeps the muon's direction relative to the axis.  The
weighted total is preserved exactly, and the copies keep the ``event_id`` of their
muon.  They leave this stage next to each other; the output store writes the rows of
each chunk in a seeded random order (`shipfastsim.output.chunk_row_order`), so in the
file any range of consecutive entries, as a FairShip job reads them, is an unbiased
sample.  Muons written at the end of the shield must then be read by FairShip without
``--phiRandom``: it would rotate the momentum alone.
"""

from __future__ import annotations

import math

import torch

from shipfastsim.batch import MuonBatch
from shipfastsim.components import ChunkContext, ComponentSpec, Parameter, Stage
from shipfastsim.hookspecs import hookimpl

__all__ = ["COMPONENT", "rotate_about_beam"]

COMPONENT = ComponentSpec(
    name="phi-rotation",
    kind="augmenter",
    description="k copies of each muon rotated about the beam axis by uniform random phi, weight w/k",
    parameters=(Parameter("copies", "int", 10, "copies per muon (k)", minimum=1),),
)


def rotate_about_beam(batch: MuonBatch, phi: torch.Tensor) -> MuonBatch:
    """Rotate x, y, px, py of every muon by its angle ``phi`` [rad] about the z axis."""
    cos, sin = torch.cos(phi), torch.sin(phi)
    return batch.replace(
        x=cos * batch.x - sin * batch.y,
        y=sin * batch.x + cos * batch.y,
        px=cos * batch.px - sin * batch.py,
        py=sin * batch.px + cos * batch.py,
    )


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [COMPONENT]


@hookimpl
def shipfastsim_augment_muons(stage: Stage, batch: MuonBatch, context: ChunkContext) -> MuonBatch | None:
    if stage.component != COMPONENT.name:
        return None
    copies = stage.params["copies"]
    copied = batch.repeat_interleave(copies)
    phi = torch.rand(len(copied), generator=context.generator, dtype=torch.float64,
                     device=context.generator.device) * (2 * math.pi)
    rotated = rotate_about_beam(copied, phi.to(copied.device))
    return rotated.replace(weight=rotated.weight / copies)
