"""Generator ``fairship-file``: replay muons from FairShip ntuples.

The muons of all files are held in memory as float32 ntuple columns (60 bytes a
muon), so this suits files of up to some 10^7 muons.  Rows that are not muons (the
id-0 padding row SHiP GAN files end with) are skipped and counted in the summary.

Provenance: ``event_id`` becomes the index of the generated muon (so that the copies
an augmenter makes share it); ``pythiaid``, ``parentid``, ``ecut``, ``release_time``,
``mother_id`` and ``process_id`` are carried from the file.  The files' muons per
proton on target are not in the files: give ``muons_per_pot`` and its source for
per-spill weights, else the run writes weights per generated muon.
"""

from __future__ import annotations

from typing import Any

import torch

from shipfastsim.adapters.fairship import count_muons, read_metadata, read_ntuple
from shipfastsim.batch import MuonBatch
from shipfastsim.components import ChunkContext, ComponentSpec, Parameter, SampleNormalisation, Stage
from shipfastsim.hookspecs import hookimpl
from shipfastsim.units import NTUPLE_Z_SHIFT, FairShipFrame

__all__ = ["COMPONENT", "MuonTable"]


class MuonTable:
    """All muons of a list of ntuples, as float32 ntuple-frame branches."""

    def __init__(self, files: list[str], frame: FairShipFrame):
        self.frame = frame
        self.skipped = 0
        parts = []
        for path in files:
            # Files written by shipfastsim say for which SetTarget offset their z was written.
            offset = (read_metadata(path) or {}).get("ntuple_z_offset_cm", NTUPLE_Z_SHIFT)
            batch, skipped = read_ntuple(path, FairShipFrame(ntuple_offset=offset))
            self.skipped += skipped
            parts.append(batch)
        # Keep the exact ntuple values: re-applying our frame happens per chunk.
        self._batch = MuonBatch.concat(parts)

    def __len__(self) -> int:
        return len(self._batch)

    def take(self, rows: torch.Tensor | slice, device: torch.device) -> MuonBatch:
        batch = self._batch.select(rows)
        if self.frame.target_z0:
            batch = batch.replace(z=batch.z + self.frame.target_z0)
        return batch.to(device)


def _check(params: dict[str, Any], run: dict[str, Any]) -> str | None:
    if params["order"] != "sequential" or params["wrap"]:
        return None
    available = sum(count_muons(path) for path in params["files"])
    events = run.get("events", 0)
    if events > available:
        return (f"run.events={events} exceeds the {available} muons in the input files; "
                "use order: sample, or wrap: true to replay them again")
    return None


def _normalisation(params: dict[str, Any]) -> SampleNormalisation:
    if params["muons_per_pot"] is None:
        return SampleNormalisation(None, "fairship-file: muons_per_pot not given for these files")
    return SampleNormalisation(params["muons_per_pot"], params["muons_per_pot_source"] or "given in the config")


COMPONENT = ComponentSpec(
    name="fairship-file",
    kind="generator",
    description="Replay muons from FairShip pythia8-Geant4 ntuples, in order or sampled with replacement",
    parameters=(
        Parameter("files", "paths", doc="FairShip ntuples to replay (metres, ntuple frame)",
                  content="fairship-ntuple"),
        Parameter("order", "choice", "sequential", "sequential: file order; sample: uniform with replacement",
                  choices=("sequential", "sample")),
        Parameter("wrap", "bool", False, "sequential only: start again at the first muon after the last"),
        Parameter("target_z0", "float", 0.0, "z of the target start in FairShip's frame [cm]"),
        Parameter("muons_per_pot", "float", None, "muons per proton on target the files stand for (their w "
                  "averaging 1); omit when unknown: weights are then per generated muon", minimum=0.0),
        Parameter("muons_per_pot_source", "str", "", "where muons_per_pot comes from (production, note)"),
    ),
    check=_check,
    normalisation=_normalisation,
)


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [COMPONENT]


@hookimpl
def shipfastsim_generate_muons(stage: Stage, n_muons: int, context: ChunkContext) -> MuonBatch | None:
    if stage.component != COMPONENT.name:
        return None
    table: MuonTable = stage.cached(
        "table", lambda: MuonTable(stage.params["files"], FairShipFrame(stage.params["target_z0"]))
    )
    if context.chunk_index == 0 and table.skipped:
        context.counters["fairship-file: non-muon rows skipped"] += table.skipped
    first, last = context.first_muon, context.first_muon + n_muons
    if stage.params["order"] == "sample":
        rows = torch.randint(len(table), (n_muons,), generator=context.generator, device=context.generator.device)
        rows = rows.cpu()
    elif last <= len(table):
        rows = slice(first, last)  # a view: no copy of the columns
    elif stage.params["wrap"]:
        rows = torch.arange(first, last) % len(table)
    else:
        raise ValueError(f"fairship-file: muons up to {last} asked for, the files hold {len(table)}")
    batch = table.take(rows, stage.device)
    event_id = torch.arange(first, last, dtype=torch.int64, device=batch.device)
    return batch.replace(event_id=event_id)

