"""shipfastsim: fast simulation of the SHiP muon background."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from shipfastsim.lazy import lazy_getattr

if TYPE_CHECKING:
    from shipfastsim.batch import MuonBatch
    from shipfastsim.components import (
        ChunkContext,
        ComponentSpec,
        FilterDecision,
        Parameter,
        SampleNormalisation,
        Stage,
    )
    from shipfastsim.hookspecs import hookimpl

__all__ = ["MuonBatch", "ChunkContext", "ComponentSpec", "FilterDecision", "Parameter", "SampleNormalisation",
           "Stage", "hookimpl"]
__version__ = "0.1.0"

# MKL's conditional numerical reproducibility: the same code path, cache blocking and
# reductions in every process, so that a chunk's float32 products (gan-target, the flows)
# are bit-identical whichever process computes them (without it a fresh process once
# gave a different gan-target chunk).  STRICT: whatever the memory alignment of the
# operands too (with AUTO alone a fresh process started by the full test suite still gave
# a different chunk, twice in about twenty runs; no measurable cost on the flows' products).
# Read when torch loads MKL, hence before any torch import; a user's own setting wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

# Imported on first use, so that `shipfastsim --help` does not wait for torch.
__getattr__ = lazy_getattr(__name__, {"MuonBatch": "shipfastsim.batch", "hookimpl": "shipfastsim.hookspecs"}
                           | {name: "shipfastsim.components" for name in __all__[1:7]})
