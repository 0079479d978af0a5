"""Generator ``fairship-file``: replay muons from FairShip ntuples.

The muons of all files are held in memory as float32 ntuple columns (60 bytes a
muon), so this suits files of up to some 10^7 muons.  Rows that are not muons (the
id-0 padding row SHiP GAN files end with) are skipped and counted in the summary.

Provenance: ``event_id`` becomes the index of the generated muon (so that the copies
an augmenter makes share it); ``pythiaid``, ``parentid``, ``ecut``, ``release_time``,
``mother_id`` and ``process_id`` are carried from the file.  The files' muons per
proton on target are not in the files: give ``muons_per_pot`` and its source for
per-spill weights, else the run writes weights per generated muon.  A weighted file
(FairShip's own productions: ``w`` = muons per spill of its POT convention) gives its
normalisation itself with ``weights_spill_pot`` (that convention's protons on target):
muons_per_pot = sum(w) / weights_spill_pot, and each replayed muon's ``w`` is divided
by the files' mean ``w``, so that the weights average 1 as the normalisation expects and
a muon's per-spill weight keeps its share of the total.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shipfastsim.adapters.fairship import count_muons, read_metadata, read_ntuple
from shipfastsim.batch import MuonBatch
from shipfastsim.components import ChunkContext, ComponentSpec, Parameter, SampleNormalisation, Stage
from shipfastsim.hookspecs import hookimpl
from shipfastsim.sample_weights import SampleWeightError, check_sample_weights, normalisation_from_weights
from shipfastsim.units import NTUPLE_Z_SHIFT, FairShipFrame

__all__ = ["COMPONENT", "MuonTable", "file_weights"]


class MuonTable:
    """All muons of a list of ntuples, as float32 ntuple-frame branches.

    ``mean_weight``: the weights ``w`` are divided by it (1: kept as in the files)."""

    def __init__(self, files: list[str], frame: FairShipFrame, mean_weight: float = 1.0):
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
        if mean_weight != 1.0:
            self._batch = self._batch.replace(weight=self._batch.weight / mean_weight)

    def __len__(self) -> int:
        return len(self._batch)

    def take(self, rows: torch.Tensor | slice, device: torch.device) -> MuonBatch:
        batch = self._batch.select(rows)
        if self.frame.target_z0:
            batch = batch.replace(z=batch.z + self.frame.target_z0)
        return batch.to(device)


def file_weights(files: list[str]) -> np.ndarray:
    """The ``w`` of every muon row of ``files`` (float64), each file's checked
    (`check_sample_weights`: an error names a file whose weights cannot be used)."""
    import uproot

    from shipfastsim.adapters.fairship import TREE_NAME
    from shipfastsim.units import MUON_PDG_IDS

    parts = []
    for path in files:
        with uproot.open(path) as file:
            tree = file[TREE_NAME]
            if "w" not in tree.keys():
                check_sample_weights(None, path)
            arrays = tree.arrays(["id", "w"], library="np")
        parts.append(check_sample_weights(arrays["w"][np.isin(arrays["id"], MUON_PDG_IDS)], path))
    return np.concatenate(parts)


def _check(params: dict[str, Any], run: dict[str, Any]) -> str | tuple[str, str] | None:
    if params["weights_spill_pot"] is not None:
        if params["muons_per_pot"] is not None:
            return ("weights_spill_pot", "give muons_per_pot or weights_spill_pot, not both (weights_spill_pot "
                    "derives muons_per_pot = sum(w) / weights_spill_pot from the files)")
        try:
            file_weights(params["files"])
        except SampleWeightError as error:
            return ("files", str(error))
    if params["order"] != "sequential" or params["wrap"]:
        return None
    available = sum(count_muons(path) for path in params["files"])
    events = run.get("events", 0)
    if events > available:
        return (f"run.events={events} exceeds the {available} muons in the input files; "
                "use order: sample, or wrap: true to replay them again")
    return None


def _normalisation(params: dict[str, Any]) -> SampleNormalisation:
    if params["weights_spill_pot"] is not None:
        return normalisation_from_weights(file_weights(params["files"]).sum(), params["weights_spill_pot"],
                                          params["files"])
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
        Parameter("weights_spill_pot", "float", None, "weighted files (FairShip productions): protons on target per "
                  "spill that their w refer to; muons_per_pot = sum(w) / this, and w are divided by their mean",
                  minimum=0.0),
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

    def build() -> MuonTable:
        weighted = stage.params.get("weights_spill_pot") is not None
        mean_weight = float(file_weights(stage.params["files"]).mean()) if weighted else 1.0
        return MuonTable(stage.params["files"], FairShipFrame(stage.params["target_z0"]), mean_weight)

    table: MuonTable = stage.cached("table", build)
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

