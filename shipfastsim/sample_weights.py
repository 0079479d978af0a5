"""Weighted muon samples: checking FairShip's ``w``, its normalisation and effective size.

FairShip's muon-background productions carry a weight ``w`` per muon: the number of
real muons per spill that the row stands for, in the production's spill convention
(5e13 protons on target for the 2018 production).  Channels simulated with a boost
have their weight divided by the boost, so the weights of one file span orders of
magnitude.  Training and validation read them as importance weights (only their
ratios matter); the normalisation reads their sum:

    muons_per_pot = sum(w) / POT_of_the_spill_convention          [muons per POT]

A sample whose weights are all equal is *unweighted*: `training_weights` returns
None for it, and every trainer then runs exactly the code it ran before weights were
honoured (same random draws, same results bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shipfastsim.components import SampleNormalisation
from shipfastsim.errors import UsageError

__all__ = ["SampleWeightError", "check_sample_weights", "training_weights", "effective_sample_size",
           "normalisation_from_weights", "row_sampler"]


class SampleWeightError(UsageError):
    """A sample's weights cannot be used: missing, non-finite, negative or all zero."""


def check_sample_weights(weights: np.ndarray | None, source: str | Path | Sequence[str | Path]) -> np.ndarray:
    """``weights`` as float64 after checking that they can weight a sample.

    Raises `SampleWeightError`, naming ``source`` (the file or files they were read
    from), when they are missing (None or empty), not finite, negative or all zero.
    """
    name = ", ".join(str(s) for s in source) if isinstance(source, list | tuple) else str(source)
    if weights is None or len(weights) == 0:
        raise SampleWeightError(f"{name}: no muon weights w (the pythia8-Geant4 branch 'w' is missing or empty)")
    weights = np.asarray(weights, dtype=np.float64)
    bad = ~np.isfinite(weights)
    if bad.any():
        raise SampleWeightError(f"{name}: {int(bad.sum())} muon weights w are not finite (first at row "
                                f"{int(np.argmax(bad))}); a weight must be a finite number >= 0")
    if (weights < 0).any():
        raise SampleWeightError(f"{name}: {int((weights < 0).sum())} muon weights w are negative (smallest "
                                f"{weights.min():.6g}); a weight must be >= 0")
    if not weights.any():
        raise SampleWeightError(f"{name}: every muon weight w is 0; the sample stands for no muons")
    return weights


def training_weights(weights: np.ndarray) -> np.ndarray | None:
    """Importance weights for training, scaled to mean 1; None when they are all equal
    (an unweighted sample: trainers then run their unweighted code unchanged)."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) == 0 or np.all(weights == weights[0]):
        return None
    return weights / weights.mean()


def effective_sample_size(weights: np.ndarray | None, n: int | None = None) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 [muons]; ``n`` when ``weights`` is None."""
    if weights is None:
        if n is None:
            raise ValueError("effective_sample_size needs weights or n")
        return float(n)
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    return float(total * total / np.sum(weights * weights)) if total > 0 else 0.0


def normalisation_from_weights(total_weight: float, spill_pot: float, files: Sequence[str | Path]
                               ) -> SampleNormalisation:
    """``muons_per_pot = total_weight / spill_pot`` with its source: the files' summed ``w``
    (muons per spill) over the protons on target of the spill convention their ``w`` uses."""
    if not (np.isfinite(spill_pot) and spill_pot > 0):
        raise SampleWeightError(f"protons on target per spill of the weights must be a number > 0, not {spill_pot}")
    names = ", ".join(Path(f).name for f in files)
    return SampleNormalisation(float(total_weight) / float(spill_pot),
                               f"sum of the muon weights w ({total_weight:.6g} muons per spill) of {names} "
                               f"over the {spill_pot:.6g} protons on target per spill their w refers to")


def row_sampler(n_rows: int, weights: np.ndarray | None, generator):
    """A function ``draw(batch_size)`` of the row indices (torch, on ``generator``'s device) of
    one training batch: uniform when ``weights`` is None (the unweighted draw, unchanged),
    else drawn with replacement with probability proportional to ``weights``: exact
    importance resampling, so the batch is a sample of the weighted population and any
    mean over it estimates the weighted expectation.  (An inverse-CDF search on the
    cumulative weights, computed once, not ``torch.multinomial``, which refuses more than
    2^24 rows: productions hold 10^8 muons.)"""
    import torch

    device = generator.device
    if weights is None:
        return lambda batch_size: torch.randint(n_rows, (batch_size,), generator=generator, device=device)
    cumulative = torch.cumsum(torch.as_tensor(weights, dtype=torch.float64, device=device), 0)

    def draw(batch_size: int):
        u = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64)
        return torch.searchsorted(cumulative, u * cumulative[-1], right=True).clamp_(max=n_rows - 1)

    return draw
