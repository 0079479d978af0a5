"""The compiled transport kernel: each muon's whole path in one thread, CPU or CUDA.

`make_kernel(sample_step)` compiles the stepping loop (step control, midpoint
lookup, sampled loss and scattering, helix, kick, plane recording, stopping) as
scalar code for one muon, around the step sampler it is given (``sample_step(tables,
material, p, E, L, sigma, key, counter) -> (loss, tx, ty, dx, dy, counter)``: the
step tables of fast-shield, the reference's detailed physics, or any other physics
written the same way).  The muon's state stays in registers from its first step to its last: no
passes over arrays per step, no compaction of the live set.  Two launchers run it:

* ``cpu``: ``numba.njit(parallel=True)``, muons spread over all threads (``prange``
  in small dynamic chunks, since paths differ in length);
* ``cuda``: ``numba.cuda.jit``, one muon per GPU thread (built on first use; needs a
  CUDA device and numba's CUDA target).

Each muon's random numbers come from its own counter-based stream (`jit.uniform`),
so the output depends on the seed and the muons only, bit for bit, whatever the
thread count or device.  Units: cm, GeV/c, tesla.

Step, per muon (the rules in `core`'s docstring): length
from the dense/air step (the long step inside magnets as far as the lateral safety
allows), shortened by the loss fraction, the bending limit and the segment's end; the
material and field of its midpoint (and at its start with ``control="start"``); the
sampled loss, then the helix with the mid-step momentum, then the kick; a muon that
crosses a recording plane is recorded straight back on it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from shipfastsim.geometry.kernel import follow_segment, query_point, segment_of
from shipfastsim.transport.jit import jitable, muon_key, numba
from shipfastsim.transport.mechanics import helix_step, kick_step, rough_dedx, scattering_sigma
from shipfastsim.units import C_LIGHT, MUON_MASS

__all__ = ["KernelSettings", "Kernels", "make_kernel", "source_digest", "LATERAL_MARGIN", "MAX_STEPS", "STEP_LIMIT"]

#: cm added to the lateral reach of a long step (the scattering kick's displacement).
LATERAL_MARGIN = 1.0
#: Steps after which a muon is stopped (stop reason `STEP_LIMIT`): far above any real
#: path (a muon crossing the whole world in 0.1 cm steps takes under 10^5).
MAX_STEPS = 1_000_000
#: Stop reason of a muon that hit `MAX_STEPS` (`core.STOP_REASONS`).
STEP_LIMIT = 5


class KernelSettings(NamedTuple):
    """Step control [cm, rad, GeV/c] as `core.StepSettings` (``long_step`` 0: off,
    ``control_start`` 1: material and field from the step's start)."""

    dense_step: float
    air_step: float
    loss_fraction: float
    max_bend: float
    min_momentum: float
    long_step: float
    eps: float
    control_start: float


@jitable
def _reach(safety, shift, u, taper, half, curv):
    """Longest straight-plus-sagitta run [cm] inside one lateral safety: the root of
    a R^2 + slope R = room, written 2 room / (slope + sqrt(slope^2 + 4 a room))."""
    room = max(safety - LATERAL_MARGIN - abs(shift) - taper * half, 0.0)
    slope = abs(u) + taper
    return 2.0 * room / max(slope + math.sqrt(slope * slope + 4.0 * curv * room), 1e-12)


@jitable
def _safe_reach(geo, seg, shift_x, shift_y, ux, uy, half, p, b, sx, sy, long_step):
    """Longest next step [cm] (up to ``long_step``) whose straight part and bending
    sagitta stay inside the lateral safeties (sx, sy) of this step's midpoint, less the
    sideways move since it (``shift``), the edges' taper and `LATERAL_MARGIN`
    (`core.StepSettings`)."""
    curv = 0.5 * C_LIGHT * b / max(p, 1e-3)
    reach = min(_reach(sx, shift_x, ux, geo.taper[seg, 0], half, curv),
                _reach(sy, shift_y, uy, geo.taper[seg, 1], half, curv))
    return min(reach, long_step)


def source_digest(sample_step) -> str:
    """Hash of every source file the kernel of ``sample_step`` may compile: the transport
    package, the geometry lookup, the units, and the package of the sampler with the
    reference's physics (which fast-shield's sampler calls).  numba's on-disk cache sees
    only the launcher's own file; this digest, compiled into the launcher, makes any
    change in those files a different kernel, so a stale compiled kernel never loads."""
    import hashlib
    import inspect
    from pathlib import Path

    here = Path(__file__).resolve().parent
    files = sorted(here.glob("*.py")) + [here.parent / "geometry" / "kernel.py", here.parent / "units.py"]
    sampler_dir = Path(inspect.getsourcefile(sample_step)).resolve().parent
    files += sorted(sampler_dir.glob("*.py")) + sorted((sampler_dir.parent / "reference").glob("*.py"))
    digest = hashlib.sha256()
    for path in dict.fromkeys(files):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def make_kernel(sample_step):
    """`Kernels` for the step sampler ``sample_step`` (a `jitable` function).  The CPU
    launcher is cached on disk by numba (``cache=True``: the next process loads it in
    about a second instead of compiling for 7-15 s), keyed by `source_digest`."""

    @jitable
    def transport_muon(i, muons, seed, geo, tab, mats, planes, world, s, out_state, out_reached, out_reason,
                       out_steps, trace):
        x, y, z, px, py, pz, q = muons[i, 0], muons[i, 1], muons[i, 2], muons[i, 3], muons[i, 4], muons[i, 5], \
            muons[i, 6]
        p = math.sqrt(px * px + py * py + pz * pz)
        inv = 1.0 / max(p, 1e-30)
        ux, uy, uz = px * inv, py * inv, pz * inv
        z_last = planes[0, 0]
        for k in range(planes.shape[0]):
            z_last = max(z_last, planes[k, 0])
        if p < s.min_momentum:
            out_reason[i] = 1
            return
        if uz <= 0.0 or z >= z_last:
            return
        key = muon_key(seed, i)
        counter = 0
        seg = segment_of(geo.edges, z)
        mat, bx, by, bz, part, index, sx, sy = query_point(geo, x, y, z, seg)
        b = math.sqrt(bx * bx + by * by + bz * bz)
        far = 0.0
        steps = 0
        while True:
            steps += 1
            z_old = z
            if s.control_start > 0.0:
                mat, bx, by, bz, part, index, sx, sy = query_point(geo, x, y, z, seg)
                b = math.sqrt(bx * bx + by * by + bz * bz)
            energy = math.sqrt(p * p + MUON_MASS * MUON_MASS)
            dense = max(geo.dense_zone[seg], mats[mat, 2])
            dense_step = s.dense_step if s.long_step <= 0.0 else max(far, s.dense_step)
            length = s.air_step + (dense_step - s.air_step) * dense
            length = min(length, s.loss_fraction * energy / (mats[mat, 0] * rough_dedx(energy)))
            length = min(length, s.max_bend * p / max(C_LIGHT * b, 1e-12))
            end = geo.seg_end[seg]
            length = max(min(length, (end - z + s.eps) / max(uz, 1e-6)), s.eps)
            half = 0.5 * length
            z_mid = z + uz * half
            if z_mid >= end:
                seg += 1
            x_mid, y_mid = x + ux * half, y + uy * half
            mat, bx, by, bz, part, index, sx, sy = query_point(geo, x_mid, y_mid, z_mid, seg)
            sigma = scattering_sigma(p, energy, length / mats[mat, 1])
            loss, tx, ty, dx, dy, counter = sample_step(tab, mat, p, energy, length, sigma, key, counter)
            e_mid = energy - 0.5 * loss
            p_mid = math.sqrt(max(e_mid * e_mid - MUON_MASS * MUON_MASS, 1e-6))
            x, y, z, ux, uy, uz, b = helix_step(x, y, z, ux, uy, uz, p_mid, q, bx, by, bz, length)
            e_new = energy - loss
            p = math.sqrt(e_new * e_new - MUON_MASS * MUON_MASS) if e_new > MUON_MASS else 0.0
            x, y, z, ux, uy, uz = kick_step(x, y, z, ux, uy, uz, tx, ty, dx, dy)
            if s.long_step > 0.0:
                far = _safe_reach(geo, seg, x - x_mid, y - y_mid, ux, uy, half, p, b, sx, sy, s.long_step)
            seg = follow_segment(geo, seg, z)
            if steps <= trace.shape[1]:  # the state after each of the first steps (`KernelTransport.trace`)
                trace[i, steps - 1, 0], trace[i, steps - 1, 1], trace[i, steps - 1, 2] = x, y, z
                trace[i, steps - 1, 3], trace[i, steps - 1, 4], trace[i, steps - 1, 5] = ux, uy, uz
                trace[i, steps - 1, 6] = p
            if p >= s.min_momentum:
                for k in range(planes.shape[0]):
                    zk = planes[k, 0]
                    if z_old < zk <= z:
                        back = (z - zk) / max(uz, 1e-6)
                        out_reached[i, k] = 1
                        out_state[i, k, 0] = x - ux * back
                        out_state[i, k, 1] = y - uy * back
                        out_state[i, k, 2] = zk
                        out_state[i, k, 3] = ux * p
                        out_state[i, k, 4] = uy * p
                        out_state[i, k, 5] = uz * p
            outside = abs(x) > world[2] or abs(y) > world[3] or z < world[0]
            if p < s.min_momentum or outside or uz <= 0.0 or z >= z_last or z > world[1] or steps >= MAX_STEPS:
                reason = STEP_LIMIT
                if z > world[1]:
                    reason = 4
                if z >= z_last:
                    reason = 0
                if uz <= 0.0:
                    reason = 3
                if outside:
                    reason = 2
                if p < s.min_momentum:
                    reason = 1
                out_reason[i] = reason
                out_steps[i] = steps
                return

    prange = numba().prange
    digest = source_digest(sample_step)

    def run_cpu(muons, seed, geo, tab, mats, planes, world, s, out_state, out_reached, out_reason, out_steps,
                trace):
        if len(digest) == 0:  # never: the digest only keys numba's cache to the sources
            return
        for i in prange(muons.shape[0]):
            transport_muon(i, muons, seed, geo, tab, mats, planes, world, s, out_state, out_reached, out_reason,
                           out_steps, trace)

    # numba names its cache files after the function: one name per sampler, so that a
    # process loads only its own sampler's index (whose entries import that sampler's
    # module), never another's, e.g. a plugin's that is no longer installed.
    run_cpu.__qualname__ = f"run_cpu__{sample_step.__module__}.{sample_step.__name__}".replace(".", "_")
    run_cpu = numba().njit(parallel=True, error_model="numpy", _nrt=False, cache=True)(run_cpu)

    return Kernels(transport_muon, run_cpu)


class Kernels:
    """The compiled launchers of one step sampler: ``run_cpu`` now, ``run_cuda`` on first use."""

    def __init__(self, transport_muon, run_cpu):
        self.transport_muon, self.run_cpu = transport_muon, run_cpu
        self._cuda = None

    def run_cuda(self):
        """The CUDA launcher (``kernel[blocks, threads](...)``), compiled on first use."""
        if self._cuda is None:
            from shipfastsim.transport.kernel_cuda import cuda_launcher

            self._cuda = cuda_launcher(self.transport_muon)
        return self._cuda


def empty_outputs(n: int, n_planes: int, trace_steps: int = 0):
    """The kernel's output arrays for ``n`` muons: states (NaN), reached flags, stop
    reasons (-1), steps, and the trace of the first ``trace_steps`` steps (NaN)."""
    return (np.full((n, n_planes, 6), np.nan), np.zeros((n, n_planes), dtype=np.uint8),
            np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64), np.full((n, trace_steps, 7), np.nan))
