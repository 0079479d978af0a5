"""Propagator ``geant4-shield``: the shield transport of real Geant4, SHiP's own simulation engine.

Builds the shield from the same geometry YAML as ``reference-shield`` and
``fast-shield`` (`detector`: every magnet part a ``G4GenericTrap`` with the corners of
`shipfastsim.geometry.magnet`, NIST materials, the YAML's field model) and
transports the muons with Geant4 11.4's standard muon physics: ionisation,
bremsstrahlung, pair production, multiple scattering, muon-nuclear interactions;
secondaries killed (`runtime`, `transport`).  It records muons at the geometry's
planes with the same counters as ``reference-shield`` (under ``geant4-shield/``),
seeds Geant4 per chunk from the chunk's generator (same chunk, same muons, in any
process) and runs one Geant4 run manager per process (dask workers included; calls
from threads of one process are serialised).  Needs ``geant4-pybind`` (the
``geant4`` extra); nothing is ever downloaded.

Units: cm, GeV/c, tesla; FairShip's frame.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shipfastsim.components import ChunkContext, ComponentSpec, Parameter, Stage
from shipfastsim.configs import DEFAULT_GEOMETRY
from shipfastsim.hookspecs import hookimpl

if TYPE_CHECKING:
    from shipfastsim.batch import MuonBatch

__all__ = ["COMPONENT", "DEFAULT_GEOMETRY", "DEFAULT_CUT_CM", "COUNTER_PREFIX", "make_transport", "propagate_batch"]

#: Production cut [cm] (see `transport.DEFAULT_CUT_CM` for why).
DEFAULT_CUT_CM = 10.0
COUNTER_PREFIX = "geant4-shield"
#: Geant4 runs one event at a time per process: threads of one dask worker take turns.
_LOCK = threading.Lock()


def _check(params: dict, run: dict) -> str | tuple[str, str] | None:
    """``shipfastsim check``: the bindings are installed, and Geant4 can record on the
    geometry's planes (without running Geant4)."""
    import importlib.util

    if importlib.util.find_spec("geant4_pybind") is None:
        from shipfastsim.plugins.geant4_shield.runtime import INSTALL_HINT

        return INSTALL_HINT
    from shipfastsim.geometry import load_geometry
    from shipfastsim.plugins.geant4_shield.detector import plane_problems

    problems = plane_problems(load_geometry(params["geometry"]))
    return ("geometry", "; ".join(problems)) if problems else None


COMPONENT = ComponentSpec(
    name="geant4-shield",
    kind="propagator",
    description="Geant4 11.4 transport through the shield geometry (muon EM and muon-nuclear physics; the reference)",
    parameters=(
        Parameter("geometry", "path", str(DEFAULT_GEOMETRY), "shield geometry YAML", content="geometry"),
        Parameter("production_cut", "float", DEFAULT_CUT_CM, "Geant4 production cut for secondaries [cm]: energy "
                  "transfers above it are discrete losses (the secondaries are killed)", minimum=1e-3),
        Parameter("min_momentum", "float", 0.5, "muons below this momentum stop [GeV/c]", minimum=0.0),
        Parameter("msc_lateral_displacement", "bool", True, "multiple scattering displaces muons sideways within "
                  "a step (Geant4's standard physics leaves it off for muons, which narrows their spread in thick "
                  "iron; one setting per process)"),
        Parameter("muon_step_ratio", "float", 0.2, "largest fraction of its remaining range a muon may use up "
                  "in one Geant4 step (Geant4's and FairShip's 0.2 bends about 1 % too little in metres of "
                  "magnetised iron; 0.002 is converged; one setting per process)", minimum=1e-4),
    ),
    check=_check,
)


def make_transport(params: dict):
    """A `Geant4Transport` for validated ``geant4-shield`` parameters (one Geant4 per process)."""
    from shipfastsim.geometry import load_geometry
    from shipfastsim.plugins.geant4_shield.transport import Geant4Transport

    return Geant4Transport(load_geometry(params.get("geometry", DEFAULT_GEOMETRY)),
                           cut_cm=float(params.get("production_cut", DEFAULT_CUT_CM)),
                           min_momentum=float(params.get("min_momentum", 0.5)),
                           lateral_displacement=bool(params.get("msc_lateral_displacement", True)),
                           muon_step_ratio=float(params.get("muon_step_ratio", 0.2)))


def propagate_batch(transport, batch: MuonBatch, plane: str, seed: int, counters=None) -> MuonBatch:
    """The muons of ``batch`` that reach ``plane``, with their state there; every plane
    of the geometry is recorded for the counters (as ``reference-shield`` does)."""
    import torch

    from shipfastsim.plugins.reference.summary import transport_counts

    geometry = transport.geometry
    geometry.plane(plane)  # unknown plane names fail before any work
    cpu = batch.to("cpu")
    pos = torch.stack([cpu.x, cpu.y, cpu.z], 1)
    mom = torch.stack([cpu.px, cpu.py, cpu.pz], 1)
    with _LOCK:
        result = transport.propagate(pos, mom, cpu.charge, geometry.plane_names(), seed)
    if counters is not None:
        from shipfastsim.plugins.geant4_shield.transport import STOP_REASONS

        counters.update(transport_counts(cpu.p, cpu.charge, result, prefix=COUNTER_PREFIX))
        for code, name in STOP_REASONS.items():
            if code:
                counters[f"{COUNTER_PREFIX}/{name}"] += int((result.stop_reason == code).sum())
    keep = result.reached[plane]
    state = result.state[plane][keep]
    out = cpu.select(keep).replace(**{name: state[:, k].contiguous()
                                      for k, name in enumerate(("x", "y", "z", "px", "py", "pz"))})
    return out.to(batch.device)


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [COMPONENT]


@hookimpl
def shipfastsim_report_run(summary: dict) -> str | None:
    from shipfastsim.plugins.reference.summary import format_summary, summary_from_counters

    table = summary_from_counters(summary["counters"], prefix=COUNTER_PREFIX)
    if not table:
        return None
    return ("geant4-shield: fraction of muons reaching each plane (and its aperture), by charge and initial "
            "momentum\n" + format_summary(table))


@hookimpl
def shipfastsim_propagate_muons(stage: Stage, batch: MuonBatch, plane: str, context: ChunkContext
                                ) -> MuonBatch | None:
    if stage.component != COMPONENT.name:
        return None
    import torch

    transport = stage.cached("transport", lambda: make_transport(stage.params))
    # The chunk's generator seeds Geant4: the same chunk gives the same muons in any process.
    seed = int(torch.randint(2**62, (1,), generator=context.generator, device=context.generator.device))
    return propagate_batch(transport, batch, plane, seed, context.counters)
