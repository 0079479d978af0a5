"""The stepping core shared by every shield transport (`core`) and its mechanics (`mechanics`).

``Transport(geometry, sampler, settings, device).propagate(pos, mom, charge, planes,
generator)`` moves a chunk of muons through the recording planes; the reference and
the fast transport differ only in their ``sampler`` (detailed physics or tables).
"""

from shipfastsim.transport.core import STOP_REASONS, StepSampler, StepSettings, Transport, TransportResult

__all__ = ["STOP_REASONS", "StepSampler", "StepSettings", "Transport", "TransportResult"]
