"""Training data for the target GAN: reading FairShip files and the fixed split.

The split is `shipfastsim.validation.split`: muon number i (0-based, in file order
over all input files, the id-0 padding row skipped) goes to train / validation /
holdout (80/10/10 %) by a hash of i alone, so the holdout is never seen by training
or early stopping, whatever the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.batch import MuonBatch
from shipfastsim.sample_weights import check_sample_weights
from shipfastsim.units import FairShipFrame
from shipfastsim.validation.split import SPLITS, split_codes, split_mask

__all__ = ["SPLITS", "SHARED_SAMPLE", "split_codes", "load_muons", "load_split"]

#: The 50k SHiP GAN sample the bundled model is trained on, relative to the repository root.
SHARED_SAMPLE = Path("../shared/data/ship_gan_target_muons_50k.root")


def load_muons(files: Sequence[str | Path], frame: FairShipFrame | None = None) -> tuple[MuonBatch, int]:
    """All muons of ``files`` (cm, GeV/c, our frame) and the number of skipped non-muon rows.

    Each file's weights ``w`` are checked (`check_sample_weights`): a file whose weights
    are non-finite, negative or all zero is refused with an error naming it.
    """
    batches, skipped = [], 0
    for path in files:
        batch, n_skipped = read_ntuple(path, frame or FairShipFrame())
        check_sample_weights(batch.weight.numpy(), path)
        batches.append(batch)
        skipped += n_skipped
    return MuonBatch.concat(batches), skipped


def load_split(files: Sequence[str | Path], part: str) -> MuonBatch:
    """The ``part`` (train, validation or holdout) of the muons in ``files``."""
    muons, _ = load_muons(files)
    return muons.select(torch.as_tensor(split_mask(len(muons), part)))
