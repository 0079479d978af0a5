"""The fast inference path (`FastNoiseToMuon`) against the reference graph `NoiseToMuon`
on the TRY_2025 weights, and its reproducibility: a chunk's muons do not depend on the
number of threads, on the rows sharing a call, or on a fork of the process."""

from __future__ import annotations

import copy
import os
import signal

import numpy as np
import pytest
import torch

from shipfastsim.adapters.onnx_export import get_export_description
from shipfastsim.plugins.gan_target import run_chunked
from shipfastsim.plugins.nf_after_shield import DANGEROUS_SIGMAS
from shipfastsim.plugins.nf_after_shield.fast import BLOCK, FastNoiseToMuon
from shipfastsim.plugins.nf_after_shield.model import DIM, NoiseToMuon, load_flow
from tests.adapters.onnx_cases import RTOL, deviation

from .conftest import AFTER_SHIELD_WEIGHTS

N_NOISE = 3 * BLOCK + 123  # whole blocks and a zero-padded last one


@pytest.fixture(scope="module")
def flow():
    return load_flow(AFTER_SHIELD_WEIGHTS)


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    return torch.cat([torch.randn(N_NOISE, 5, generator=generator), torch.rand(N_NOISE, 1, generator=generator)], 1)


@pytest.mark.parametrize("sigma", [1.0, *DANGEROUS_SIGMAS])
def test_equals_the_reference_graph(flow, noise, sigma):
    """Against the exact function (`NoiseToMuon` in float64), on one and on two threads,
    the fast engine is as accurate as the float32 reference graph in `run_chunked`'s
    4096-row calls: within 1e-5 relative per element (above the export's declared
    floors, as for onnxruntime and SOFIE) or, where float32 itself cannot reach that
    (the far latent tails at sigma 1.3 and 1.6, whose maps amplify rounding: the
    reference graph is off by up to 2.2e-4 there), within twice the reference graph's
    own largest deviation.  The two float32 paths do not agree bit for bit: the fast
    engine evaluates the inverse maps as one line per segment."""
    with torch.inference_mode():
        reference = run_chunked(NoiseToMuon(flow, sigma), noise).numpy()
        exact = NoiseToMuon(copy.deepcopy(flow).double(), sigma)(noise.double()).float().numpy()
    description = get_export_description("nf-after-shield", {"latent_sigma": sigma})
    # Far latent tails can overflow pz (the log-pz map continues linearly): such rows must
    # overflow alike, the finite ones agree.
    finite = np.isfinite(reference).all(1) & np.isfinite(exact).all(1)
    assert finite.mean() > 0.999
    bound = max(RTOL, 2.0 * deviation(description, "muon", reference[finite], exact[finite]))
    for threads in (1, 2):
        fast = FastNoiseToMuon(flow, sigma, threads=threads)(noise).numpy()
        np.testing.assert_array_equal(np.isfinite(fast), np.isfinite(reference))
        assert deviation(description, "muon", fast[finite], exact[finite]) <= bound, threads


@pytest.mark.parametrize("shift", [0.1, 0.4])
def test_inverse_maps_by_segment_or_by_hinge(flow, noise, shift):
    """Every other hinge of the inverse maps moved by ``shift`` of the spacing: at 0.1 the
    engine still finds each value's segment by arithmetic (`_segments`), at 0.4 it sums the
    hinges; either way its output is as accurate as the reference graph."""
    moved = copy.deepcopy(flow)
    inner = flow.config.knots - 2
    with torch.no_grad():
        hinges = moved.inv_hinges.view(DIM, inner)
        hinges[:, 1::2] += shift * (hinges[:, 1:2] - hinges[:, :1])
    engine = FastNoiseToMuon(moved, threads=1)
    assert (engine.segments is None) == (shift > 0.25)
    with torch.inference_mode():
        reference = run_chunked(NoiseToMuon(moved), noise).numpy()
        exact = NoiseToMuon(copy.deepcopy(moved).double())(noise.double()).float().numpy()
    description = get_export_description("nf-after-shield")
    assert np.isfinite(reference).all() and np.isfinite(exact).all()
    bound = max(RTOL, 2.0 * deviation(description, "muon", reference, exact))
    assert deviation(description, "muon", engine(noise).numpy(), exact) <= bound


def test_masks_are_folded_whatever_the_masked_weights(flow, noise):
    """Training leaves the masked entries of the last layers at their zero initialisation,
    so on the bundled weights the output-mask fold is a no-op: here every weight is random."""
    scrambled = copy.deepcopy(flow)
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for coupling in scrambled.couplings:
            for layer in (coupling.first, coupling.middle, coupling.last):
                layer.weight.copy_(0.05 * torch.randn(layer.weight.shape, generator=generator))
                layer.bias.copy_(0.05 * torch.randn(layer.bias.shape, generator=generator))
    with torch.inference_mode():
        reference = run_chunked(NoiseToMuon(scrambled), noise).numpy()
        unmasked = run_chunked(NoiseToMuon(flow), noise).numpy()
    description = get_export_description("nf-after-shield")
    assert np.isfinite(reference).all()
    assert deviation(description, "muon", reference, unmasked) > 1e-2  # the scrambling matters
    assert deviation(description, "muon", FastNoiseToMuon(scrambled)(noise).numpy(), reference) <= RTOL


def test_muons_do_not_depend_on_threads_or_call_size(flow, noise):
    """A muon's output is a function of its noise row alone: the same bits on 1, 2 or 3
    threads, from torch's thread count, and when computed among fewer rows (at latent
    sigma 1.3, where the weight column depends on a product that MKL rounds by row count)."""
    sigma = DANGEROUS_SIGMAS[0]
    whole = FastNoiseToMuon(flow, sigma, threads=1)(noise)
    for threads in (2, 3):
        assert torch.equal(FastNoiseToMuon(flow, sigma, threads=threads)(noise), whole), threads
    engine = FastNoiseToMuon(flow, sigma)
    before = torch.get_num_threads()
    try:
        for torch_threads in (1, 2):
            torch.set_num_threads(torch_threads)
            assert torch.equal(engine(noise), whole), torch_threads
            assert torch.get_num_threads() == torch_threads  # the pool left the caller's setting alone
    finally:
        torch.set_num_threads(before)
    for first, n in ((0, 1), (10, 3), (BLOCK - 2, 4), (BLOCK, 5), (17, 2 * BLOCK + 1)):
        assert torch.equal(engine(noise[first:first + n]), whole[first:first + n]), (first, n)


def test_the_generator_uses_the_fast_path(generate_nf, flow, monkeypatch):
    """The plugin's torch backend on the CPU makes its muons with the fast engine, and they
    are the reference graph's."""
    from shipfastsim.plugins.nf_after_shield import draw_noise, muons_from_output

    calls = []
    columns = FastNoiseToMuon.columns
    monkeypatch.setattr(FastNoiseToMuon, "columns", lambda self, x: calls.append(len(x)) or columns(self, x))
    batch, _ = generate_nf(5000, seed=9, first=7)
    assert calls == [5000]
    noise = draw_noise(5000, torch.Generator().manual_seed(9))
    with torch.inference_mode():
        fast = FastNoiseToMuon(flow)(noise)
        reference = run_chunked(NoiseToMuon(flow), noise)
    assert batch.equals(muons_from_output(fast, 7, torch.device("cpu"), 3148.66))
    description = get_export_description("nf-after-shield")
    assert deviation(description, "muon", fast.numpy(), reference.numpy()) <= RTOL


def test_the_thread_pool_survives_a_fork(flow, noise):
    """The resume tests fork a process mid-session: the child must not wait on the parent's
    threads (which a fork does not copy), and must give the same muons."""
    engine = FastNoiseToMuon(flow, threads=2)
    expected = engine(noise)  # the pool now exists in this process
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            signal.alarm(60)  # a hang fails the test instead of blocking it
            status = 0 if torch.equal(engine(noise), expected) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_bad_noise_is_refused(flow):
    with pytest.raises(ValueError, match="float32 CPU noise"):
        FastNoiseToMuon(flow)(torch.zeros(10, 6, dtype=torch.float64))


def test_each_pool_thread_runs_one_intra_op_thread(flow, noise):
    """Two pool threads of two intra-op threads each would run four threads on two cores
    (measured: no faster than one thread).  ATen takes a thread's count from the
    process-wide value at the thread's first parallel operation, so a pool thread must
    still have one after the caller's value (here 2) is back in place."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine = FastNoiseToMuon(flow, threads=2)
        engine(noise)
        counts = list(engine._executor(2).map(lambda _: torch.get_num_threads(), range(8)))
        assert counts == [1] * 8
        assert torch.get_num_threads() == 2  # the caller's own count is left as it was
    finally:
        torch.set_num_threads(threads)
