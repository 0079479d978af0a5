"""FairShip muon ntuples: the ``pythia8-Geant4`` tree that MuonBackGenerator reads.

Schema (identical to the SHiP GAN sample in ``../shared/data``): one TTree
``pythia8-Geant4`` with fifteen float32 branches, positions in **metres** in the
ntuple frame (target start at z = -50 m), momenta in GeV/c.  Conversion to and
from shipfastsim's frame (cm, FairShip's origin) goes through
:class:`shipfastsim.units.FairShipFrame`, so the round trip is exact.

Beside the tree each file written by shipfastsim holds a ``TObjString`` named
`METADATA_KEY` with the run's metadata as JSON (POT equivalent, weight unit, config
fingerprint, version, how FairShip should read it).  FairShip ignores it: its
``MuonBackGenerator::Init`` looks the tree up by name, and the extra key adds no leaf
to the tree (the leaf count decides between ``x..pz`` and ``ox..opz``).  Real ROOT
reads it with ``file.Get("shipfastsim_metadata").GetString()``.

Files are written to a temporary name and renamed into place, so a reader never
sees a half-written file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipfastsim.batch import MuonBatch
from shipfastsim.units import MUON_PDG_IDS, FairShipFrame

__all__ = [
    "TREE_NAME",
    "METADATA_KEY",
    "DEFAULT_FRAME",
    "BRANCH_OF_COLUMN",
    "COMPRESSIONS",
    "NtupleWriter",
    "write_ntuple",
    "read_ntuple",
    "read_metadata",
    "output_kind",
    "run_simscript_command",
    "iter_ntuple",
    "count_entries",
    "count_muons",
    "batch_to_branches",
    "branches_to_batch",
]

TREE_NAME = "pythia8-Geant4"
#: Key of the TObjString (JSON) that shipfastsim writes beside the tree.
METADATA_KEY = "shipfastsim_metadata"
#: MuonBatch column -> branch, in the branch order of FairShip's files.
BRANCH_OF_COLUMN = {
    "event_id": "event_id",
    "pdg_id": "id",
    "parent_id": "parentid",
    "pythia_id": "pythiaid",
    "ecut": "ecut",
    "weight": "w",
    "x": "x",
    "y": "y",
    "z": "z",
    "px": "px",
    "py": "py",
    "pz": "pz",
    "release_time": "release_time",
    "mother_id": "mother_id",
    "process_id": "process_id",
}
_POSITIONS = ("x", "y")
#: FairShip's current frame (target start at z = 0 cm); frozen, so safe as a default.
DEFAULT_FRAME = FairShipFrame()
#: Names accepted for the ``compression`` argument.
COMPRESSIONS = ("zstd", "zlib", "lz4", "none")


def _compression(name: str, level: int):
    import uproot

    if name == "none":
        return None
    try:
        return {"zlib": uproot.ZLIB, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}[name](level)
    except KeyError:
        raise ValueError(f"unknown compression {name!r}; allowed: {COMPRESSIONS}") from None


def batch_to_branches(batch: MuonBatch, frame: FairShipFrame = DEFAULT_FRAME) -> dict[str, np.ndarray]:
    """Branch name -> float32 array in the ntuple's units and frame.

    The arrays are big-endian, as ROOT stores them, so writing needs no further copy.
    """
    columns = batch.to_numpy()
    branches = {}
    for column, branch in BRANCH_OF_COLUMN.items():
        values = columns[column]
        if column in _POSITIONS:
            values = values / 100.0
        elif column == "z":
            values = frame.z_to_ntuple(values)
        branches[branch] = values.astype(">f4")
    return branches


def branches_to_batch(
    branches: dict[str, np.ndarray], frame: FairShipFrame = DEFAULT_FRAME, device: str | torch.device = "cpu"
) -> MuonBatch:
    """The inverse of `batch_to_branches` (float32 ntuple arrays to a batch)."""
    columns = {}
    for column, branch in BRANCH_OF_COLUMN.items():
        values = np.asarray(branches[branch]).astype(np.float64)
        if column in _POSITIONS:
            values = values * 100.0
        elif column == "z":
            values = frame.z_from_ntuple(values)
        columns[column] = values
    return MuonBatch.from_columns(columns, device=device)


class NtupleWriter:
    """Write batches into one FairShip ntuple, appearing atomically on `close`.

    Args:
        path: final file name.
        frame: conversion of z to the ntuple frame.
        compression: one of `COMPRESSIONS`; ``level`` its level.  zstd is the
            default: as small as zlib and some 20 times faster to write; ROOT reads
            it since 6.20 (use zlib for older ROOT).
        metadata: JSON-serialisable dict written as the `METADATA_KEY` TObjString.
    """

    def __init__(self, path: str | os.PathLike, frame: FairShipFrame = DEFAULT_FRAME,
                 compression: str = "zstd", level: int = 1, metadata: dict[str, Any] | None = None):
        import uproot

        self.path = Path(path)
        self.frame = frame
        self.metadata = metadata
        self.entries = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._file = uproot.recreate(self._tmp, compression=_compression(compression, level))
        self._tree = self._file.mktree(TREE_NAME, {b: np.float32 for b in BRANCH_OF_COLUMN.values()}, title=TREE_NAME)

    def write(self, batch: MuonBatch) -> None:
        """Append a batch as one basket per branch (skipped when empty)."""
        self.write_branches(batch_to_branches(batch, self.frame))

    def write_branches(self, branches: dict[str, np.ndarray]) -> None:
        """Append float32 arrays already in ntuple units (see `batch_to_branches`)."""
        entries = len(branches["id"])
        if entries:
            self._tree.extend(branches)
            self.entries += entries

    def close(self) -> Path:
        """Finish the file, fsync it and rename it into place."""
        if self.metadata is not None:
            # A str is written as a TObjString, which every ROOT version reads.
            self._file[METADATA_KEY] = json.dumps(self.metadata, sort_keys=True)
        self._file.close()
        with open(self._tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> NtupleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_ntuple(path: str | os.PathLike, batches: MuonBatch | Iterable[MuonBatch],
                 frame: FairShipFrame = DEFAULT_FRAME, compression: str = "zstd", level: int = 1) -> int:
    """Write one or several batches to a FairShip ntuple; returns the muon count."""
    if isinstance(batches, MuonBatch):
        batches = [batches]
    with NtupleWriter(path, frame, compression, level) as writer:
        for batch in batches:
            writer.write(batch)
    return writer.entries


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The shipfastsim metadata of an ntuple, or None for a file without it."""
    import uproot

    with uproot.open(path) as file:
        if METADATA_KEY not in file:
            return None
        return json.loads(str(file[METADATA_KEY]))


def output_kind(stages) -> str:
    """Where the muons of a pipeline are recorded: ``target`` (no propagator) or the
    plane of the last propagator (``shield_end``, ``decay_vessel``, ...)."""
    planes = [stage.params["plane"] for stage in stages if stage.kind == "propagator"]
    return planes[-1] if planes else "target"


def run_simscript_command(path: str | os.PathLike, entries: int, kind: str, rotated: bool,
                          ntuple_z_offset: float = 5000.0, first: int = 0) -> dict[str, Any]:
    """The ``run_simScript.py`` call that simulates an output file in FairShip, with why.

    Facts from FairShip's ``macro/run_simScript.py`` and ``shipgen/MuonBackGenerator.cxx``
    (2026): ``--SmearBeam`` (default 0.8 cm, Gaussian) and ``--PaintBeam`` (default
    5 cm radius) displace x, y of every muon; ``--phiRandom`` replaces the azimuth of
    the momentum only; ``-i``/``-n`` pick consecutive entries.
    """
    reading = []
    notes = []
    if kind == "target":
        notes.append("muons at their production point: FairShip's beam smearing and painting (defaults) "
                     "give the beam spot the sample lacks")
    else:
        reading = ["--SmearBeam", "0", "--PaintBeam", "0"]
        notes.append(f"muons already transported to {kind}: smearing and painting must be off, or positions "
                     "and the position-momentum correlation are destroyed")
    if rotated or kind != "target":
        notes.append("no --phiRandom: " + ("the chain already rotated the muons about the beam axis"
                                          if rotated else "rotating the momentum alone breaks the muon's direction"))
    if ntuple_z_offset == 5000.0:
        notes.append("z is written for primGen.SetTarget(ship_geo.target.z0 + 50*u.m) (FairShip up to 2025); "
                     "run_simScript.py of 2026 adds 70.845 m: write with run.output.ntuple_z_offset: 7084.5")
    else:
        notes.append(f"z is written for primGen.SetTarget(ship_geo.target.z0 + {ntuple_z_offset / 100:g}*u.m)")
    options = ["--MuonBack", "-f", str(path), "-i", str(first), "-n", str(max(entries - first, 0)), *reading]
    command = "python $FAIRSHIP/macro/run_simScript.py " + " ".join(options)
    return {"kind": kind, "command": command, "reading_options": " ".join(reading), "notes": notes}


def count_entries(path: str | os.PathLike) -> int:
    """Number of rows of the ntuple's tree (padding rows included)."""
    import uproot

    with uproot.open(path) as file:
        return file[TREE_NAME].num_entries


def count_muons(path: str | os.PathLike) -> int:
    """Number of muon rows (|id| == 13) of the ntuple."""
    import uproot

    with uproot.open(path) as file:
        ids = file[TREE_NAME]["id"].array(library="np")
    return int(np.isin(ids, MUON_PDG_IDS).sum())


def read_ntuple(path: str | os.PathLike, frame: FairShipFrame = DEFAULT_FRAME, entry_start: int = 0,
                entry_stop: int | None = None, device: str | torch.device = "cpu",
                muons_only: bool = True) -> tuple[MuonBatch, int]:
    """Read rows ``[entry_start, entry_stop)`` of an ntuple.

    Returns:
        the batch, and the number of rows skipped because they are not muons (such
        as the id-0 padding row the SHiP GAN files end with) when ``muons_only``.
    """
    import uproot

    with uproot.open(path) as file:
        if TREE_NAME not in file:
            raise KeyError(f"{path} has no TTree {TREE_NAME!r} (keys: {file.keys()})")
        tree = file[TREE_NAME]
        missing = set(BRANCH_OF_COLUMN.values()) - set(tree.keys())
        if missing:
            raise KeyError(f"{path}: tree {TREE_NAME!r} lacks branches {sorted(missing)}")
        arrays = tree.arrays(list(BRANCH_OF_COLUMN.values()), entry_start=entry_start,
                             entry_stop=entry_stop, library="np")
    skipped = 0
    if muons_only:
        is_muon = np.isin(arrays["id"], MUON_PDG_IDS)
        skipped = int((~is_muon).sum())
        if skipped:
            arrays = {name: values[is_muon] for name, values in arrays.items()}
    return branches_to_batch(arrays, frame, device), skipped


def iter_ntuple(path: str | os.PathLike, step: int, frame: FairShipFrame = DEFAULT_FRAME,
                device: str | torch.device = "cpu") -> Iterator[MuonBatch]:
    """Stream an ntuple's muons in batches of at most ``step`` rows."""
    total = count_entries(path)
    for start in range(0, total, step):
        yield read_ntuple(path, frame, start, min(start + step, total), device)[0]
