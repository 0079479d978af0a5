"""shipfastsim: fast simulation of the SHiP muon background."""

from __future__ import annotations

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

# Imported on first use, so that `shipfastsim --help` does not wait for torch.
__getattr__ = lazy_getattr(__name__, {"MuonBatch": "shipfastsim.batch", "hookimpl": "shipfastsim.hookspecs"}
                           | {name: "shipfastsim.components" for name in __all__[1:7]})
