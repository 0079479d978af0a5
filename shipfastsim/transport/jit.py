"""The compiled-kernel toolkit: one Python source for the CPU (numba, all cores) and CUDA.

Every function of the transport kernel is written once as plain scalar Python and
decorated with `jitable` (numba's ``register_jitable``): numba compiles it into the
caller, whether the caller is the CPU launcher (``njit(parallel=True)``, one muon per
``prange`` iteration) or the CUDA launcher (``cuda.jit``, one muon per thread).  So
the kernel functions may use only what both targets compile: ``math``, scalar
arithmetic, loops, reads and writes of arrays passed in (no allocation, no numpy
calls, no exceptions).

Randomness is counter-based (`uniform`): the n-th number of muon i is splitmix64 of
(key of the chunk seed and i) + n x the golden-ratio increment, so every muon's draws
depend only on the seed and its index, never on the thread that moves it or on the
order in which threads run: the output is bit-identical whatever the thread count or
device scheduling.  splitmix64 (Steele, Lea & Flood, OOPSLA 2014) passes BigCrush as
such a stream.
"""

from __future__ import annotations

import importlib

import numpy as np

__all__ = ["numba", "jitable", "muon_key", "uniform", "GOLDEN"]


def numba():
    """The numba module (a core dependency; the error names the install when it is missing)."""
    try:
        return importlib.import_module("numba")
    except ImportError as error:  # pragma: no cover - numba is a core dependency
        raise ImportError("the transport kernel needs numba: pip install 'numba>=0.60'") from error


def jitable(function):
    """Make scalar ``function`` callable from every compiled kernel (CPU and CUDA), with
    numpy's floating-point error model (no zero-division checks: the kernel guards its
    divisions itself) and still callable from Python."""
    return numba().extending.register_jitable(error_model="numpy", _nrt=False)(function)


#: The splitmix64 increment (2^64 / golden ratio).
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


@jitable
def _mix(z):
    """splitmix64's output function of a uint64."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@jitable
def muon_key(seed, index):
    """The stream key (uint64) of muon ``index`` in a chunk seeded with ``seed`` (uint64)."""
    return _mix(seed ^ _mix(np.uint64(index) + GOLDEN))


@jitable
def uniform(key, counter):
    """The ``counter``-th uniform number in [0, 1) of the stream ``key`` (both uint64), 53 bits."""
    return float(_mix(key + np.uint64(counter) * GOLDEN) >> _S11) * _TO_UNIT
