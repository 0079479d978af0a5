"""`MuonBatch`: the one columnar data model that flows between pipeline stages.

A batch is a set of equally long 1-D torch tensors on one device, one per column.
Kinematics are float64 so that the metre/centimetre conversion of FairShip ntuples
round-trips exactly; ids are int64.  Units and frame are those of
:mod:`shipfastsim.units` (cm, GeV/c, z along the beam with FairShip's origin).

Conversions to numpy and awkward are zero-copy for batches on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from shipfastsim.units import MUON_MASS, PDG_MU_PLUS

__all__ = ["MuonBatch", "COLUMNS", "KINEMATIC_COLUMNS", "PROVENANCE_COLUMNS"]

#: Column name -> (dtype, unit, meaning).  Order is the order of the FairShip tree.
COLUMNS: dict[str, tuple[torch.dtype, str, str]] = {
    "event_id": (torch.int64, "", "id of the event (proton interaction) the muon comes from"),
    "pdg_id": (torch.int64, "", "PDG id: 13 for mu-, -13 for mu+"),
    "parent_id": (torch.int64, "", "PDG id of the muon's parent particle"),
    "pythia_id": (torch.int64, "", "PDG id of the particle Pythia produced"),
    "ecut": (torch.float64, "GeV", "kinetic-energy cut of the producing simulation"),
    "weight": (torch.float64, "muons/spill", "expected number of such muons per spill"),
    "x": (torch.float64, "cm", "position"),
    "y": (torch.float64, "cm", "position"),
    "z": (torch.float64, "cm", "position, FairShip frame"),
    "px": (torch.float64, "GeV/c", "momentum"),
    "py": (torch.float64, "GeV/c", "momentum"),
    "pz": (torch.float64, "GeV/c", "momentum"),
    "release_time": (torch.float64, "ns", "time of production"),
    "mother_id": (torch.int64, "", "Geant4 track id of the mother"),
    "process_id": (torch.int64, "", "Geant4/TMCProcess id of the producing process"),
}
KINEMATIC_COLUMNS = ("x", "y", "z", "px", "py", "pz")
PROVENANCE_COLUMNS = ("event_id", "parent_id", "pythia_id", "mother_id", "process_id")


@dataclass(frozen=True, eq=False)
class MuonBatch:
    """A chunk of muons, one tensor per column; see `COLUMNS` for units."""

    event_id: torch.Tensor
    pdg_id: torch.Tensor
    parent_id: torch.Tensor
    pythia_id: torch.Tensor
    ecut: torch.Tensor
    weight: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    px: torch.Tensor
    py: torch.Tensor
    pz: torch.Tensor
    release_time: torch.Tensor
    mother_id: torch.Tensor
    process_id: torch.Tensor

    def __post_init__(self) -> None:
        n = self.event_id.shape[0]
        device = self.event_id.device
        for name, (dtype, _, _) in COLUMNS.items():
            column = getattr(self, name)
            if column.ndim != 1 or column.shape[0] != n:
                raise ValueError(f"column {name!r} has shape {tuple(column.shape)}, expected ({n},)")
            if column.dtype != dtype or column.device != device:
                raise ValueError(
                    f"column {name!r} is {column.dtype} on {column.device}, expected {dtype} on {device}"
                )

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Any],
        device: torch.device | str | None = None,
        **defaults: float,
    ) -> MuonBatch:
        """Build a batch from arrays or tensors, casting to the column dtypes.

        ``pdg_id``, ``x``..``pz`` are required; missing provenance columns are filled
        with 0, ``weight`` with 1, unless given in ``defaults``.
        """
        required = ("pdg_id", *KINEMATIC_COLUMNS)
        missing = [name for name in required if name not in columns]
        if missing:
            raise KeyError(f"MuonBatch needs columns {missing}")
        unknown = set(columns) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown MuonBatch columns {sorted(unknown)}; known: {list(COLUMNS)}")
        reference = torch.as_tensor(columns["pdg_id"])
        n = reference.shape[0]
        device = torch.device(device) if device is not None else reference.device
        fill = {"weight": 1.0} | defaults
        values = {}
        for name, (dtype, _, _) in COLUMNS.items():
            if name in columns:
                values[name] = torch.as_tensor(columns[name], dtype=dtype, device=device)
            else:
                values[name] = torch.full((n,), fill.get(name, 0), dtype=dtype, device=device)
        return cls(**values)

    @classmethod
    def empty(cls, device: torch.device | str = "cpu") -> MuonBatch:
        """A batch with no muons."""
        return cls(**{name: torch.empty(0, dtype=dtype, device=device) for name, (dtype, _, _) in COLUMNS.items()})

    @classmethod
    def concat(cls, batches: Sequence[MuonBatch]) -> MuonBatch:
        """Concatenate batches (all on one device) in order."""
        if not batches:
            raise ValueError("concat needs at least one batch")
        return cls(**{name: torch.cat([getattr(b, name) for b in batches]) for name in COLUMNS})

    # ---- basic protocol -----------------------------------------------------------
    def __len__(self) -> int:
        return self.event_id.shape[0]

    def __repr__(self) -> str:
        return f"MuonBatch(n={len(self)}, device={self.device})"

    @property
    def device(self) -> torch.device:
        return self.event_id.device

    def columns(self) -> dict[str, torch.Tensor]:
        """Column name -> tensor, in FairShip tree order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **columns: torch.Tensor) -> MuonBatch:
        """A new batch with some columns replaced (the others are shared, not copied)."""
        return replace(self, **columns)

    def select(self, index: torch.Tensor) -> MuonBatch:
        """Rows picked by a boolean mask or an integer index tensor."""
        if (isinstance(index, torch.Tensor) and index.dtype in (torch.int64, torch.int32) and index.dim() == 1
                and (len(index) == 0 or int(index.min()) >= 0)):
            # 3.5x faster than column[index] (the row shuffle of every chunk)
            return MuonBatch(**{name: column.index_select(0, index) for name, column in self.columns().items()})
        return MuonBatch(**{name: column[index] for name, column in self.columns().items()})

    def repeat_interleave(self, copies: int) -> MuonBatch:
        """Each muon repeated ``copies`` times in a row (weights untouched)."""
        return MuonBatch(**{n: c.repeat_interleave(copies) for n, c in self.columns().items()})

    def to(self, device: torch.device | str) -> MuonBatch:
        return MuonBatch(**{name: column.to(device) for name, column in self.columns().items()})

    def equals(self, other: MuonBatch) -> bool:
        """Exact equality of every column."""
        return len(self) == len(other) and all(
            torch.equal(a, getattr(other, name)) for name, a in self.columns().items()
        )

    # ---- conversions --------------------------------------------------------------
    def to_numpy(self) -> dict[str, np.ndarray]:
        """Column name -> numpy array; zero-copy on the CPU, a device copy otherwise."""
        return {name: column.detach().cpu().numpy() for name, column in self.columns().items()}

    def to_awkward(self):
        """An awkward record array of the columns; zero-copy on the CPU."""
        import awkward as ak

        return ak.zip({n: ak.from_numpy(a, regulararray=False) for n, a in self.to_numpy().items()}, depth_limit=1)

    # ---- derived physics quantities -------------------------------------------------
    @property
    def p(self) -> torch.Tensor:
        """Momentum magnitude [GeV/c]."""
        return torch.sqrt(self.px**2 + self.py**2 + self.pz**2)

    @property
    def pt(self) -> torch.Tensor:
        """Transverse momentum with respect to the beam axis [GeV/c]."""
        return torch.hypot(self.px, self.py)

    @property
    def energy(self) -> torch.Tensor:
        """Total energy assuming the muon mass [GeV]."""
        return torch.sqrt(self.p**2 + MUON_MASS**2)

    @property
    def charge(self) -> torch.Tensor:
        """Charge in units of e (+1 for mu+, -1 for mu-), as float64."""
        return torch.where(self.pdg_id == PDG_MU_PLUS, 1.0, -1.0).to(torch.float64)
