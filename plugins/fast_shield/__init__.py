"""Propagator ``fast-shield``: muons through the shield by sampling pre-computed step tables.

The fast counterpart of the reference propagator: same geometry YAML, same field
model, recording planes and stopping conditions, but the energy loss and scattering
of each step come from inverse-CDF tables built once from Geant4's or the reference's
steps (`tables`), and each muon moves in one thread of the compiled transport kernel
on the CPU or a CUDA ``stage.device`` (`stepper`).  ``shipfastsim tables build`` (`cli`) rebuilds the tables.

Units: cm, GeV/c, tesla; FairShip's frame.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from shipfastsim.components import ChunkContext, ComponentSpec, Parameter, Stage
from shipfastsim.configs import DEFAULT_GEOMETRY
from shipfastsim.hookspecs import hookimpl

if TYPE_CHECKING:
    import torch

    from shipfastsim.batch import MuonBatch

__all__ = ["COMPONENT", "DEFAULT_GEOMETRY", "DEFAULT_TABLES", "fast_shield_steps", "fast_shield_truth",
           "make_transport", "propagate_batch"]

PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def _default_tables() -> Path:
    from shipfastsim.plugins.fast_shield.tables import SHIPPED_SETTINGS, tables_filename

    return PACKAGE_DIR / tables_filename(SHIPPED_SETTINGS)


@functools.cache
def _component() -> ComponentSpec:
    from shipfastsim.plugins.fast_shield.stepper import FAST_STEPS

    return ComponentSpec(
        name="fast-shield",
        kind="propagator",
        description="muons through the shield geometry by sampling pre-computed step tables (batched, CPU or CUDA)",
        parameters=(
            Parameter("geometry", "path", str(DEFAULT_GEOMETRY), "shield geometry YAML", content="geometry"),
            Parameter("tables", "path", str(_default_tables()), "step tables .npz (shipfastsim tables build)"),
            Parameter("dense_step", "float", FAST_STEPS.dense_step,
                      "step in dense matter and magnet/target/block z ranges [cm]", minimum=0.5),
            Parameter("long_step", "float", FAST_STEPS.long_step,
                      "longest step inside the magnets, taken as far as the lateral edges of their iron allow [cm] "
                      "(at most the tables' longest step; 0: always dense_step)", minimum=0.0),
            Parameter("air_step", "float", FAST_STEPS.air_step,
                      "step elsewhere [cm] (at most the tables' longest step)", minimum=0.5),
            Parameter("min_momentum", "float", 0.5, "muons below it stop [GeV/c]", minimum=0.5),
        ),
        check=_check,
    )


def _range_problem(params: dict, tables) -> tuple[str, str] | None:
    """(parameter, why) when ``params`` are outside what ``tables`` support (steps, lowest momentum)."""
    settings = tables.settings
    if params.get("min_momentum", 0.5) < settings.p_min:
        return "min_momentum", f"{params['min_momentum']} is below the tables' lowest momentum, {settings.p_min} GeV/c"
    for name in ("dense_step", "long_step", "air_step"):
        if params.get(name, 0.0) > settings.l_max:
            return name, f"{params[name]} cm exceeds the tables' longest step; allowed: up to {settings.l_max} cm"
    return None


def _check(params: dict, run: dict) -> str | tuple[str, str] | None:
    """``shipfastsim check``: the tables load and support the configured steps and momenta."""
    from shipfastsim.plugins.fast_shield.tables import load_tables

    try:
        tables = load_tables(params["tables"])
    except Exception as error:
        return "tables", f"{params['tables']} are not fast-shield step tables ({str(error).splitlines()[0]})"
    return _range_problem(params, tables)


def __getattr__(name: str):
    # DEFAULT_TABLES (the shipped tables' versioned name) and COMPONENT need the tables
    # module, hence torch: built on first use, so that `shipfastsim tables --help` and the
    # other parsers, which import this package, stay light.
    if name == "DEFAULT_TABLES":
        return _default_tables()
    if name == "COMPONENT":
        return _component()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fast_shield_steps(params: dict) -> dict[str, float]:
    """The step control of ``fast-shield`` parameters, defaults filled in: ``dense_step``,
    ``long_step`` (0: always dense_step), ``air_step`` [cm] and ``min_momentum`` [GeV/c]."""
    from shipfastsim.plugins.fast_shield.stepper import FAST_STEPS

    return {"dense_step": float(params.get("dense_step", FAST_STEPS.dense_step)),
            "long_step": float(params.get("long_step", FAST_STEPS.long_step)),
            "air_step": float(params.get("air_step", FAST_STEPS.air_step)),
            "min_momentum": float(params.get("min_momentum", FAST_STEPS.min_momentum))}


def fast_shield_truth(params: dict) -> dict:
    """The provenance truth record of a sample transported with ``fast-shield`` parameters:
    its step tables (default: the shipped ones) and its step control (`fast_shield_steps`)."""
    from shipfastsim.provenance import truth_record

    return truth_record("fast-shield", params.get("tables", _default_tables()), steps=fast_shield_steps(params))


def make_transport(params: dict, device: torch.device | str = "cpu"):
    """A `FastTransport` for validated ``fast-shield`` parameters."""
    from shipfastsim.geometry import load_geometry
    from shipfastsim.plugins.fast_shield.stepper import FAST_STEPS, FastTransport
    from shipfastsim.plugins.fast_shield.tables import load_tables

    steps = fast_shield_steps(params)
    settings = replace(FAST_STEPS, dense_step=steps["dense_step"], air_step=steps["air_step"],
                       long_step=steps["long_step"] if steps["long_step"] > 0 else None,
                       min_momentum=steps["min_momentum"])
    tables = load_tables(params.get("tables", _default_tables()))
    problem = _range_problem(params, tables)
    if problem:
        raise ValueError(": ".join(problem))
    return FastTransport(load_geometry(params.get("geometry", DEFAULT_GEOMETRY)), tables, settings, device)


def propagate_batch(transport, batch: MuonBatch, plane: str, generator: torch.Generator) -> MuonBatch:
    """The muons of ``batch`` that reach ``plane``, with their state there (float64 columns)."""
    import torch

    pos = torch.stack([batch.x, batch.y, batch.z], 1)
    mom = torch.stack([batch.px, batch.py, batch.pz], 1)
    hits = transport.propagate(pos, mom, batch.charge, plane, generator)
    reached = hits.reached[plane].to(batch.device)
    state = hits.state[plane].to(batch.device)[reached]
    out = batch.select(reached)
    return out.replace(**{name: state[:, k].contiguous() for k, name in enumerate(("x", "y", "z", "px", "py", "pz"))})


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [_component()]


@hookimpl
def shipfastsim_propagate_muons(stage: Stage, batch: MuonBatch, plane: str, context: ChunkContext
                                ) -> MuonBatch | None:
    if stage.component != _component().name:
        return None
    key = f"transport:{stage.device}"
    transport = stage.cached(key, lambda: make_transport(stage.params, stage.device))
    return propagate_batch(transport, batch.to(stage.device), plane, context.generator)
