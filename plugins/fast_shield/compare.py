"""Fast versus reference transport on the same input muons (tests and benchmarks).

* `target_sample(n, seed)`: n phi-augmented muons of the shipped target sample;
* `run_reference` / `run_fast`: both transports through the same planes;
* `fraction_table`: the fraction reaching a plane (or its aperture) per charge and
  momentum bin, with binomial errors, and the pull between the two transports;
* `distribution_metrics`: W1/sigma and KS per feature of the state at a plane, and
  the classifier two-sample AUC (`shipfastsim.validation.metrics`).

Units: cm, GeV/c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from shipfastsim.batch import MuonBatch

__all__ = ["P_BINS", "FEATURES", "target_sample", "run_reference", "run_fast", "FractionRow", "fraction_table",
           "state_features", "distribution_metrics"]

#: Momentum bins [GeV/c] of the agreement tables (the sample spans 15-360 GeV/c).
P_BINS = (0.0, 30.0, 60.0, 100.0, 400.0)
#: Features compared at a plane: position [cm], momentum [GeV/c], slopes dx/dz, dy/dz.
FEATURES = ("x", "y", "px", "py", "pz", "p", "tx", "ty")


def target_sample(n: int, seed: int = 0) -> MuonBatch:
    """n muons of `TARGET_SAMPLE` (each repeated as needed), rotated about the beam
    by independent uniform angles (the ``phi-rotation`` augmenter's operation)."""
    from shipfastsim.adapters.fairship import read_ntuple
    from shipfastsim.data import TARGET_SAMPLE
    from shipfastsim.plugins.phi_rotation import rotate_about_beam

    base = read_ntuple(TARGET_SAMPLE)[0]
    copies = max(1, math.ceil(n / len(base)))
    # Copy k of every muon comes before copy k+1, so the first n rows are spread over the file.
    order = torch.arange(len(base) * copies).reshape(len(base), copies).T.reshape(-1)[:n]
    batch = base.repeat_interleave(copies).select(order)
    generator = torch.Generator().manual_seed(seed)
    return rotate_about_beam(batch, torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi))


def _inputs(batch: MuonBatch):
    return (torch.stack([batch.x, batch.y, batch.z], 1), torch.stack([batch.px, batch.py, batch.pz], 1),
            batch.charge)


def run_reference(batch: MuonBatch, planes: list[str], seed: int, geometry=None):
    """Reference transport (`TransportResult`) of the batch through ``planes``."""
    from shipfastsim.geometry import load_geometry
    from shipfastsim.plugins.fast_shield import DEFAULT_GEOMETRY
    from shipfastsim.plugins.reference.transport import ReferenceTransport

    transport = ReferenceTransport(geometry or load_geometry(DEFAULT_GEOMETRY))
    return transport.propagate(*_inputs(batch), planes, torch.Generator().manual_seed(seed))


def run_fast(batch: MuonBatch, planes: list[str], seed: int, params: dict | None = None,
             device: str = "cpu"):
    """Fast transport (`PlaneHits`) of the batch through ``planes``."""
    from shipfastsim.plugins.fast_shield import make_transport

    transport = make_transport(params or {}, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    return transport.propagate(*_inputs(batch.to(device)), planes, generator)


@dataclass
class FractionRow:
    """One charge and momentum bin: muons in, fraction passing for each transport
    with binomial errors, and the pull (difference / combined error)."""

    charge: int
    p_low: float
    p_high: float
    n: int
    reference: float
    reference_err: float
    fast: float
    fast_err: float

    @property
    def pull(self) -> float:
        err = math.hypot(self.reference_err, self.fast_err)
        return (self.fast - self.reference) / err if err > 0 else 0.0


def _binomial(k: int, n: int) -> tuple[float, float]:
    f = k / n if n else 0.0
    # Floor the error at one muon so that empty or full bins do not give infinite pulls.
    return f, math.sqrt(max(f * (1 - f), 1.0 / max(n, 1)) / max(n, 1))


def fraction_table(batch: MuonBatch, passed_reference: torch.Tensor, passed_fast: torch.Tensor,
                   p_bins=P_BINS) -> list[FractionRow]:
    """Fractions passing per charge (+1, -1) and initial momentum bin."""
    p, q = batch.p.cpu(), batch.charge.cpu()
    ref, fast = passed_reference.cpu(), passed_fast.cpu()
    rows = []
    for charge in (1, -1):
        for lo, hi in zip(p_bins[:-1], p_bins[1:], strict=True):
            sel = (q == charge) & (p >= lo) & (p < hi)
            n = int(sel.sum())
            rows.append(FractionRow(charge, lo, hi, n, *_binomial(int(ref[sel].sum()), n),
                                    *_binomial(int(fast[sel].sum()), n)))
    return rows


def state_features(state: torch.Tensor) -> np.ndarray:
    """(N, 6) states at a plane -> (N, len(FEATURES)) feature array."""
    s = state.detach().cpu().double()
    x, y, px, py, pz = s[:, 0], s[:, 1], s[:, 3], s[:, 4], s[:, 5]
    p = torch.sqrt(px**2 + py**2 + pz**2)
    return torch.stack([x, y, px, py, pz, p, px / pz, py / pz], 1).numpy()


def distribution_metrics(reference: np.ndarray, fast: np.ndarray, seed: int = 0, epochs: int = 20) -> dict:
    """W1/sigma and KS per feature (sigma: the reference's standard deviation) and
    the classifier two-sample AUC of fast versus reference."""
    from shipfastsim.validation.metrics import classifier_auc, ks_statistic, wasserstein1

    out = {"features": {}}
    for j, name in enumerate(FEATURES):
        sigma = reference[:, j].std() + 1e-300
        out["features"][name] = {"w1_over_sigma": wasserstein1(reference[:, j], fast[:, j]) / sigma,
                                 "ks": ks_statistic(reference[:, j], fast[:, j])}
    out["auc"] = classifier_auc(reference, fast, seed=seed, epochs=epochs)
    return out
