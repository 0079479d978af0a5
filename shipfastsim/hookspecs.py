"""Hook specifications: the contract between the runner and every plugin.

A plugin is any module or object with functions marked ``@hookimpl`` whose names
match the specs below.  Bundled plugins are listed in
:data:`shipfastsim.registry.DEFAULT_PLUGINS`; third-party ones register through the
``shipfastsim`` entry-point group.  Stage hooks are dispatched by the registry
(`shipfastsim.registry.ComponentRegistry.stage_hook`) to the one plugin that declared
``stage.component``, never to the others; a plugin therefore cannot answer, by mistake
or on purpose, for a component it did not declare.  Returning None for a component
that is not one's own stays good practice (for code that calls ``manager.hook``).

Units everywhere: cm, GeV/c, FairShip's frame (see :mod:`shipfastsim.units`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # annotations only: plugins declaring components need not import torch
    from shipfastsim.batch import MuonBatch
    from shipfastsim.components import ChunkContext, ComponentSpec, ExportDescription, FilterDecision, Stage

__all__ = ["hookspec", "hookimpl", "PROJECT_NAME"]

PROJECT_NAME = "shipfastsim"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def shipfastsim_declare_components() -> list[ComponentSpec]:
    """Declare the components this plugin provides, with their parameters.

    Called once when the plugin manager is built; the names must be unique across
    all plugins of a kind.
    """


@hookspec(firstresult=True)
def shipfastsim_generate_muons(stage: Stage, n_muons: int, context: ChunkContext) -> MuonBatch | None:
    """Make a chunk of ``n_muons`` muons.

    Args:
        stage: the configured generator (``stage.kind == "generator"``).
        n_muons: how many muons to produce; the chunk covers the global muon indices
            ``context.first_muon .. context.first_muon + n_muons - 1``.
        context: chunk position and the seeded ``context.generator`` to draw from.

    Returns:
        exactly ``n_muons`` muons on ``stage.device`` (cm, GeV/c), or None if
        ``stage.component`` is not this plugin's.
    """


@hookspec(firstresult=True)
def shipfastsim_propagate_muons(
    stage: Stage, batch: MuonBatch, plane: str, context: ChunkContext
) -> MuonBatch | None:
    """Move muons to the recording plane named ``plane``.

    Args:
        stage: the configured propagator.
        batch: muons to transport, in FairShip's frame [cm, GeV/c].
        plane: a recording plane of the propagator's geometry (e.g. ``shield_end``).
        context: chunk position and random stream.

    Returns:
        the muons that reach the plane, with their state there (z on the plane),
        weights unchanged; None if ``stage.component`` is not this plugin's.
    """


@hookspec(firstresult=True)
def shipfastsim_augment_muons(stage: Stage, batch: MuonBatch, context: ChunkContext) -> MuonBatch | None:
    """Return a larger or reshaped sample standing for the same physics.

    Weights must be adjusted so that weighted totals stay unbiased: the expected sum
    of ``weight`` over the result equals the sum over ``batch``.  None if
    ``stage.component`` is not this plugin's.
    """


@hookspec
def shipfastsim_report_run(summary: dict) -> str | None:
    """Add a section to the report of a finished run.

    Args:
        summary: the run summary (the JSON written beside the output): per-stage
            muons, weights and seconds, and the ``counters`` that stages filled.

    Returns:
        text printed after the summary table and kept in ``summary["reports"]``
        (e.g. survival fractions by charge and momentum), or None.
    """


@hookspec(firstresult=True)
def shipfastsim_export_description(component: str, params: dict) -> ExportDescription | None:
    """Describe the inference graph of a neural component for ONNX/SOFIE export.

    Args:
        component: component name (e.g. ``gan-target``).
        params: its validated parameters (defaults filled in), naming the weights.

    Returns:
        an `ExportDescription` (a torch module from the graph inputs FairShip feeds,
        such as noise, to physical outputs, with names, shapes and units), or None if
        the component is not this plugin's or is not neural.
    """


@hookspec(firstresult=True)
def shipfastsim_filter_muons(stage: Stage, batch: MuonBatch, context: ChunkContext) -> FilterDecision | None:
    """Decide which muons to keep (the dangerous ones) and their new weights.

    Returns:
        a `FilterDecision` with a boolean ``keep`` mask over ``batch`` and optionally
        the new weight of every muon; None if ``stage.component`` is not this
        plugin's.
    """
