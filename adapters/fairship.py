"""FairShip muon ntuples: the ``pythia8-Geant4`` tree that MuonBackGenerator reads.

Schema (identical to the SHiP GAN sample in ``../shared/data``): one TTree
``pythia8-Geant4`` with fifteen float32 branches, positions in **metres** in the
ntuple frame (target start at z = -50 m), momenta in GeV/c.  Conversion to and
from shipfastsim's frame (cm, FairShip's origin) goes through
:class:`shipfastsim.units.FairShipFrame`, so the round trip is exact.

Files are written to a temporary name and renamed into place, so a reader never
sees a half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from shipfastsim.batch import MuonBatch
from shipfastsim.units import MUON_PDG_IDS, FairShipFrame

__all__ = [
    "TREE_NAME",
    "DEFAULT_FRAME",
    "BRANCH_OF_COLUMN",
    "COMPRESSIONS",
    "NtupleWriter",
    "write_ntuple",
    "read_ntuple",
    "iter_ntuple",
    "count_entries",
    "count_muons",
    "batch_to_branches",
    "branches_to_batch",
]

TREE_NAME = "pythia8-Geant4"
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
    """

    def __init__(self, path: str | os.PathLike, frame: FairShipFrame = DEFAULT_FRAME,
                 compression: str = "zstd", level: int = 1):
        import uproot

        self.path = Path(path)
        self.frame = frame
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
