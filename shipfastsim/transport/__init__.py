"""Shield transport: one compiled stepping kernel for every transport.

``KernelTransport(geometry, kernels, sampler_arrays, settings, device).propagate(pos,
mom, charge, planes, generator)`` moves muons through a geometry; the kernel
(`kernel.make_kernel`) takes the step sampler (fast-shield's tables, the reference's
detailed physics) and runs the rest: step control, geometry lookup, helix, kick,
plane recording (`core` says how a step goes).
"""

from shipfastsim.transport.core import STOP_REASONS, StepSettings, TransportResult

__all__ = ["STOP_REASONS", "StepSettings", "TransportResult"]
