"""`KernelTransport`: chunks of muons through a geometry with the compiled kernel.

``propagate(pos, mom, charge, planes, generator) -> TransportResult``, the interface
of every transport (Geant4's too), with the stepping of `kernel.make_kernel`: tensors
in, tensors out; the arithmetic is float64 on the CPU (all numba threads) or on a CUDA
device.  The chunk's seed is one 63-bit integer drawn from the generator passed in;
every muon's stream derives from it and from the muon's index in the chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from shipfastsim.geometry import GeometryLookup, ShieldGeometry, get_material
from shipfastsim.geometry.kernel import kernel_arrays
from shipfastsim.transport.core import StepSettings, TransportResult
from shipfastsim.transport.kernel import Kernels, KernelSettings, empty_outputs

__all__ = ["KernelTransport", "CUDA_THREADS_PER_BLOCK"]

#: Threads per block of the CUDA launch (one muon each).
CUDA_THREADS_PER_BLOCK = 128


class KernelTransport:
    """Transport with compiled ``kernels`` (`kernel.make_kernel`) and their step
    sampler's arrays ``sampler_arrays`` (passed to the sampler as its tables).

    Args:
        geometry: the shield geometry.
        kernels: the launchers of one step sampler.
        sampler_arrays: what the sampler reads (a tuple of numpy arrays; a subclass that
            derives it from the geometry's materials sets it after this constructor).
        settings: step control (`StepSettings`; the arithmetic is float64).
        device: ``cpu`` or a CUDA device.
    """

    def __init__(self, geometry: ShieldGeometry, kernels: Kernels, sampler_arrays, settings: StepSettings,
                 device: torch.device | str = "cpu"):
        self.geometry, self.kernels, self.settings = geometry, kernels, settings
        self.device = torch.device(device)
        self.lookup = GeometryLookup(geometry)
        self.geo = kernel_arrays(self.lookup.table)
        #: (material, density scale) of each geometry material index (`GeometryLookup.materials`).
        self.geometry_materials = [(get_material(n), scale) for n, scale in self.lookup.materials]
        density = np.array([m.density * scale for m, scale in self.geometry_materials])
        #: Per geometry material: density [g/cm3], radiation length [cm], 1 for dense matter.
        self.materials = np.stack([density, [m.radiation_length / (m.density * k) for m, k in self.geometry_materials],
                                   (density > 0.05).astype(np.float64)], 1)
        self.sampler_arrays = sampler_arrays
        s = settings
        self.kernel_settings = KernelSettings(s.dense_step, s.air_step, s.loss_fraction, s.max_bend, s.min_momentum,
                                              s.long_step or 0.0, 1e-6, float(s.control == "start"))
        w = geometry.world
        self.world = np.array([w.z_min, w.z_max, w.half_x, w.half_y], dtype=np.float64)
        self._device_arrays = None

    @property
    def density(self) -> np.ndarray:
        """Density [g/cm3] of each geometry material (`GeometryLookup.materials`)."""
        return self.materials[:, 0]

    def propagate(self, pos: torch.Tensor, mom: torch.Tensor, charge: torch.Tensor, planes: str | Sequence[str],
                  generator: torch.Generator) -> TransportResult:
        """Move (N, 3) positions [cm] and momenta [GeV/c] of charges [e] through the
        recording ``planes`` (one name or several), stopping after the last."""
        return self._launch(pos, mom, charge, planes, generator, 0)[0]

    def trace(self, pos: torch.Tensor, mom: torch.Tensor, charge: torch.Tensor, planes: str | Sequence[str],
              generator: torch.Generator, steps: int) -> tuple[TransportResult, torch.Tensor]:
        """`propagate`, and each muon's state after each of its first ``steps`` steps:
        (N, steps, 7) x, y, z [cm], ux, uy, uz, p [GeV/c] (NaN after its last step)."""
        return self._launch(pos, mom, charge, planes, generator, steps)

    def _launch(self, pos, mom, charge, planes, generator, trace_steps: int):
        plane_objs = [self.geometry.plane(name) for name in ([planes] if isinstance(planes, str) else planes)]
        plane_rows = np.array([[pl.z, pl.aperture_half_x if pl.has_aperture else 0.0,
                                pl.aperture_half_y if pl.has_aperture else 0.0] for pl in plane_objs])
        muons = torch.cat([pos, mom, charge[:, None]], 1).detach().to("cpu", torch.float64).numpy()
        muons = np.ascontiguousarray(muons)
        seed = np.uint64(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))
        outputs = empty_outputs(len(muons), len(plane_objs), trace_steps)
        args = (self.geo, self.sampler_arrays, self.materials, plane_rows, self.world, self.kernel_settings)
        if self.device.type == "cuda":
            self._run_cuda(muons, seed, args, outputs)
        else:
            self.kernels.run_cpu(muons, seed, *args, *outputs)
        state, reached, reason, steps, trace = outputs
        result = TransportResult(stop_reason=torch.from_numpy(reason).to(self.device), steps=int(steps.max(initial=0)),
                                 steps_per_muon=torch.from_numpy(steps))
        for k, pl in enumerate(plane_objs):
            hit = torch.from_numpy(reached[:, k].astype(bool)).to(self.device)
            result.reached[pl.name] = hit
            result.state[pl.name] = torch.from_numpy(np.ascontiguousarray(state[:, k])).to(self.device)
            if pl.has_aperture:
                st = result.state[pl.name]
                result.in_aperture[pl.name] = (hit & (st[:, 0].abs() <= pl.aperture_half_x)
                                               & (st[:, 1].abs() <= pl.aperture_half_y))
        return result, torch.from_numpy(trace)

    def _run_cuda(self, muons, seed, args, outputs) -> None:
        """One CUDA launch, one muon per thread; inputs copied once per transport."""
        from numba import cuda

        def on_device(value):
            if isinstance(value, np.ndarray):
                return cuda.to_device(value)
            if isinstance(value, tuple) and hasattr(value, "_fields"):
                return type(value)(*(on_device(v) for v in value))
            return value

        if self._device_arrays is None:
            self._device_arrays = tuple(on_device(a) for a in args)
        device_outputs = [cuda.to_device(a) for a in outputs]
        blocks = (len(muons) + CUDA_THREADS_PER_BLOCK - 1) // CUDA_THREADS_PER_BLOCK
        self.kernels.run_cuda()[max(blocks, 1), CUDA_THREADS_PER_BLOCK](
            cuda.to_device(muons), seed, *self._device_arrays, *device_outputs)
        for host, device in zip(outputs, device_outputs, strict=True):
            device.copy_to_host(host)
