"""Propagator ``reference-shield``: the detailed reference transport as a pipeline stage.

Returns the muons that reach the requested recording plane with their state there
(weights and provenance unchanged).  Every call transports to the last plane of the
geometry so that the run summary also gets the aperture counts: counters
``reference-shield/<charge>/<p bin>/<what>`` (see `summary`), plus
``reference-shield/stopped``, ``/left_world``, ``/backward``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from shipfastsim.batch import MuonBatch
from shipfastsim.components import ChunkContext, ComponentSpec, Parameter, Stage
from shipfastsim.configs import DEFAULT_GEOMETRY
from shipfastsim.geometry import load_geometry
from shipfastsim.hookspecs import hookimpl
from shipfastsim.plugins.reference.summary import (
    COUNTER_PREFIX,
    format_summary,
    summary_from_counters,
    transport_counts,
)
from shipfastsim.plugins.reference.transport import REFERENCE_STEPS, STOP_REASONS, PhysicsCuts, ReferenceTransport

__all__ = ["COMPONENT", "DEFAULT_GEOMETRY", "transport_for", "propagate_batch"]


COMPONENT = ComponentSpec(
    name="reference-shield",
    kind="propagator",
    description="detailed muon transport through the magnetised shield (Bethe, brems, pair, photonuclear, MCS)",
    parameters=(
        Parameter("geometry", "path", str(DEFAULT_GEOMETRY), "shield geometry YAML", content="geometry"),
        Parameter("v_cut", "float", 0.01, "relative energy transfer above which radiative losses are sampled",
                  minimum=1e-5),
        Parameter("delta_cut", "float", 0.01, "knock-on electron energy above which they are sampled [GeV]",
                  minimum=1e-4),
        Parameter("min_momentum", "float", 0.5, "muons below this momentum stop [GeV]", minimum=0.0),
        Parameter("max_step_dense", "float", 10.0, "largest step in and between iron pieces [cm]", minimum=0.01),
        Parameter("max_step_air", "float", 50.0, "largest step in air outside the shield [cm]", minimum=0.01),
        Parameter("max_bend", "float", 0.02, "largest bending angle per step [rad]", minimum=1e-5),
        Parameter("max_loss_fraction", "float", 0.05, "largest mean fractional energy loss per step",
                  minimum=1e-4),
    ),
)


def transport_for(stage: Stage) -> ReferenceTransport:
    """The stage's transport (geometry and tables built once per process)."""
    params = stage.params
    steps = replace(REFERENCE_STEPS, min_momentum=float(params["min_momentum"]),
                    dense_step=float(params["max_step_dense"]), air_step=float(params["max_step_air"]),
                    max_bend=float(params["max_bend"]), loss_fraction=float(params["max_loss_fraction"]))
    cuts = PhysicsCuts(v_cut=float(params["v_cut"]), delta_cut=float(params["delta_cut"]))
    return stage.cached("transport", lambda: ReferenceTransport(load_geometry(params["geometry"]), steps, cuts))


def propagate_batch(transport: ReferenceTransport, batch: MuonBatch, plane: str, generator: torch.Generator,
                    counters=None) -> MuonBatch:
    """Transport a batch and return the muons at ``plane`` (state at the plane)."""
    transport.geometry.plane(plane)  # unknown plane names fail before any work
    cpu = batch.to("cpu")
    pos = torch.stack([cpu.x, cpu.y, cpu.z], 1)
    mom = torch.stack([cpu.px, cpu.py, cpu.pz], 1)
    result = transport.propagate(pos, mom, cpu.charge, transport.geometry.plane_names(), generator)
    if counters is not None:
        counters.update(transport_counts(cpu.p, cpu.charge, result))
        for code, name in STOP_REASONS.items():
            if code:
                counters[f"{COUNTER_PREFIX}/{name}"] += int((result.stop_reason == code).sum())
    keep = result.reached[plane]
    state = result.state[plane][keep]
    out = cpu.select(keep).replace(x=state[:, 0].contiguous(), y=state[:, 1].contiguous(),
                                   z=state[:, 2].contiguous(), px=state[:, 3].contiguous(),
                                   py=state[:, 4].contiguous(), pz=state[:, 5].contiguous())
    return out.to(batch.device)


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [COMPONENT]


#: Propagators whose ``geometry`` parameter is a shield geometry (their field goes in the report).
SHIELD_TRANSPORTS = ("reference-shield", "fast-shield", "geant4-shield")


def field_report(summary: dict) -> str | None:
    """The field of every magnet part of the shield geometries the run's transports used."""
    from shipfastsim.config import ConfigError, load_config
    from shipfastsim.geometry.probe import field_table

    if not summary.get("config"):
        return None
    try:
        config = load_config(summary["config"])
    except (ConfigError, OSError):  # the config moved or changed since the run: nothing to report
        return None
    paths = dict.fromkeys(str(s.params["geometry"]) for s in config.stages if s.component in SHIELD_TRANSPORTS)
    tables = [field_table(load_geometry(path)) for path in paths]
    return ("shield field per magnet part\n" + "\n".join(tables)) if tables else None


@hookimpl
def shipfastsim_report_run(summary: dict) -> str | None:
    sections = [field_report(summary)]
    table = summary_from_counters(summary["counters"])
    if table:
        sections.append("reference-shield: fraction of muons reaching each plane (and its aperture), by charge and "
                        "initial momentum\n" + format_summary(table))
    return "\n".join(s for s in sections if s) or None


@hookimpl
def shipfastsim_propagate_muons(stage: Stage, batch: MuonBatch, plane: str, context: ChunkContext) -> MuonBatch | None:
    if stage.component != COMPONENT.name:
        return None
    # The transport runs on the CPU generator; a device generator is not used here.
    generator = context.generator if context.generator.device.type == "cpu" else \
        torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=context.generator)))
    return propagate_batch(transport_for(stage), batch, plane, generator, context.counters)
