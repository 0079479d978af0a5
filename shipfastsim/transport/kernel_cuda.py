"""The CUDA launcher of the transport kernel: one muon per GPU thread.

Imported only when a transport runs on a CUDA device (`kernel.Kernels.run_cuda`); the
kernel body is the same `jitable` source as the CPU launcher's.  ``cuda`` is a module
global here on purpose: numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by
the tests on machines without a GPU) swaps the globals of a simulated kernel.
"""

from __future__ import annotations

from numba import cuda

__all__ = ["cuda_launcher"]


def cuda_launcher(transport_muon):
    """A ``cuda.jit`` kernel running ``transport_muon`` for muon ``cuda.grid(1)``."""

    @cuda.jit
    def run(muons, seed, geo, tab, mats, planes, world, s, out_state, out_reached, out_reason, out_steps, trace):
        i = cuda.grid(1)
        if i < muons.shape[0]:
            transport_muon(i, muons, seed, geo, tab, mats, planes, world, s, out_state, out_reached, out_reason,
                           out_steps, trace)

    return run
