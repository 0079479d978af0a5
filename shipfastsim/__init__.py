"""shipfastsim: fast simulation of the SHiP muon background."""

from shipfastsim.batch import MuonBatch
from shipfastsim.components import ChunkContext, ComponentSpec, FilterDecision, Parameter, Stage
from shipfastsim.hookspecs import hookimpl

__all__ = ["MuonBatch", "ChunkContext", "ComponentSpec", "FilterDecision", "Parameter", "Stage", "hookimpl"]
__version__ = "0.1.0"
