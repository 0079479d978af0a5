"""The compiled transport kernel: streams, the per-point geometry lookup, the CUDA launcher."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from shipfastsim.transport.jit import muon_key, uniform


def test_streams_are_uniform_and_independent():
    """10^5 draws of one stream: mean 1/2 and variance 1/12 within 4 sigma; two muons'
    streams uncorrelated; the same (key, counter) gives the same number."""
    with np.errstate(over="ignore"):  # in Python, numpy warns of the uint64 wrap-around that is the hash
        keys = [muon_key(np.uint64(7), i) for i in range(2)]
        draws = np.array([[uniform(k, n) for n in range(100_000)] for k in keys])
        repeat = uniform(keys[1], 12345)
    n = draws.shape[1]
    assert abs(draws[0].mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)
    assert abs(draws[0].var() - 1 / 12) < 4 * np.sqrt(1 / 180 / n)
    assert abs(np.corrcoef(draws)[0, 1]) < 4 / np.sqrt(n)
    assert ((draws >= 0) & (draws < 1)).all()
    assert repeat == draws[1, 12345]


_SIMULATED_CUDA = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from shipfastsim.plugins.fast_shield import make_transport
    from shipfastsim.plugins.fast_shield.compare import target_sample
    from shipfastsim.transport.kernel import empty_outputs

    transport = make_transport({})
    batch = target_sample(48, seed=3)
    muons = np.ascontiguousarray(torch.stack([batch.x, batch.y, batch.z, batch.px, batch.py, batch.pz,
                                              batch.charge], 1).numpy())
    planes = np.array([[transport.geometry.plane("shield_end").z, 0.0, 0.0]])
    args = (transport.geo, transport.sampler_arrays, transport.materials, planes, transport.world,
            transport.kernel_settings)
    seed = np.uint64(2024)
    cpu, gpu = empty_outputs(len(muons), 1), empty_outputs(len(muons), 1)
    transport.kernels.run_cpu(muons, seed, *args, *cpu)
    transport._run_cuda(muons, seed, args, gpu)
    json.dump({"state": [a.tolist() for a in (cpu[0], gpu[0])], "reason": [cpu[2].tolist(), gpu[2].tolist()],
               "steps": [cpu[3].tolist(), gpu[3].tolist()]}, sys.stdout)
""")


def test_cuda_launcher_runs_the_same_kernel_in_numbas_cuda_simulator():
    """The CUDA launcher (one muon per thread, `KernelTransport._run_cuda`) under numba's
    CUDA simulator gives what the CPU launcher gives, muon by muon (this machine has no
    GPU: the simulator runs the CUDA kernel's Python source, so this checks the launcher
    and that the kernel's source is valid for the CUDA target's semantics, not the GPU)."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-c", _SIMULATED_CUDA], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["reason"][0] == out["reason"][1] and out["steps"][0] == out["steps"][1]
    cpu, gpu = (np.nan_to_num(np.array(s)) for s in out["state"])
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12, atol=1e-9)
    assert np.mean(np.array(out["steps"][0])) > 20


@pytest.mark.cuda
def test_cuda_device_gives_the_cpu_output():
    """On a CUDA device the kernel gives the CPU's output to rounding (runs only where numba sees a GPU)."""
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA device on this machine (allowed skip: the CUDA test needs a GPU)")
    from shipfastsim.plugins.fast_shield import make_transport
    from shipfastsim.plugins.fast_shield.compare import target_sample

    batch = target_sample(5000, seed=3)
    pos, mom = torch.stack([batch.x, batch.y, batch.z], 1), torch.stack([batch.px, batch.py, batch.pz], 1)
    runs = [make_transport({}, device).propagate(pos, mom, batch.charge, "shield_end",
                                                 torch.Generator().manual_seed(4)) for device in ("cpu", "cuda")]
    assert torch.equal(runs[0].stop_reason, runs[1].stop_reason.cpu())
    torch.testing.assert_close(runs[1].state["shield_end"].cpu().nan_to_num(),
                               runs[0].state["shield_end"].nan_to_num(), rtol=1e-9, atol=1e-6)


def test_the_cache_key_covers_the_kernels_sources(monkeypatch):
    """numba's disk cache sees only the launcher's file: `source_digest`, compiled into the
    launcher, must change with any source the kernel inlines (here the helix's module and
    the fast-shield sampler's), and differ between samplers."""
    from pathlib import Path

    from shipfastsim.plugins.fast_shield.kernel_sampler import sample_step
    from shipfastsim.plugins.reference.kernel_physics import reference_step
    from shipfastsim.transport.kernel import source_digest

    fast = source_digest(sample_step)
    assert fast != source_digest(reference_step)
    read = Path.read_bytes
    for edited in ("mechanics.py", "kernel_sampler.py", "kernel_physics.py", "kernel.py"):
        monkeypatch.setattr(Path, "read_bytes", lambda self, e=edited: read(self) + (b"#" if self.name == e else b""))
        assert source_digest(sample_step) != fast, edited
    monkeypatch.setattr(Path, "read_bytes", read)
    assert source_digest(sample_step) == fast
