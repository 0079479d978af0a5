"""Fast exact CPU inference of `NoiseToMuon`: the same function, several times faster per core
than `NoiseToMuon` in the same 4096-row calls, and on several cores (`benchmarks/bench_nf.py`).

`NoiseToMuon` (the export graph) recomputes the masked weights ``W * mask`` on every call,
concatenates the charge to the state, runs its elementwise ops on strided column views
(``st[:, :5]``: no vector kernels, 0.35 ms per tanh of 4096 x 5 values) and allocates
every intermediate.  `FastNoiseToMuon` evaluates the same function on precomputed weights:

* masks folded once at load, and each bias as an extra weight column against a constant
  row of ones (the ``addmm`` bias copy costs as much as the product);
* feature-major layout: the state is ``[7, n]`` (5 latent rows, the charge, ones), so
  every product is one ``mm`` into a preallocated buffer and every elementwise op runs
  in place on contiguous rows;
* the last layer's product only for the columns a coupling transforms (the masked ones
  would get scale exp(0) = 1 and shift 0), and its tanh and exp only on those;
* the inverse Gaussianising maps as one line per segment, found by arithmetic on the
  evenly spaced hinges (`_segments`), in place of a relu per hinge and a product;
* fixed blocks of `BLOCK` = 4096 muons (`run_chunked`'s call size; the last block
  zero-padded), the buffers of one block (~1 MB) staying in a core's L2 cache;
* blocks shared out over ``threads`` Python threads (torch releases the GIL inside its
  ops), each with one intra-op thread: faster than torch's intra-op threads on these
  small products, and a block's result never depends on the thread count.

The couplings' products have the reference's operands and reduction length (the bias
term is the last of the sum, where ``addmm`` adds it) and their elementwise ops round as
the reference's; the maps' lines round differently from the reference's sum of hinges.
Against the float64 function the output is as accurate as the float32 graph: 1.06e-5 /
7.5e-5 / 2.7e-4 at latent sigma 1 / 1.3 / 1.6 (the graph: 1.2e-5 / 9.7e-5 / 4.2e-4; export
floors as for onnxruntime and SOFIE; 200,000 muons), which
`tests/plugins/nf_after_shield/test_fast.py` requires.  Units: noise dimensionless, muons
in cm, GeV/c (see `NoiseToMuon`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import torch

from shipfastsim.plugins.gan_target import CHUNK_SIZE
from shipfastsim.plugins.gan_target.model import _step
from shipfastsim.plugins.nf_after_shield.model import DIM, MuonFlow, NoiseToMuon

__all__ = ["BLOCK", "FastNoiseToMuon", "cpu_engine"]

#: Muons per block: the network call size of every neural plugin (`run_chunked`).
BLOCK = CHUNK_SIZE
_OUT_COLUMNS = 8  # x, y, z, px, py, pz, PDG id, weight


def _one_intra_op_thread() -> None:
    """Give the calling thread one OpenMP/MKL thread, for good.

    ATen sets a thread's OpenMP and MKL thread counts from the process-wide
    `torch.set_num_threads` value at the thread's first parallel operation, not when
    `torch.set_num_threads` is called: a pool thread that only called it would take the
    main thread's count (2 here) at its first product, and two pool threads would then
    run four threads on two cores (no faster than one).  So an operation runs here, while
    the process-wide value is still 1 (`FastNoiseToMuon._executor` restores it after
    every pool thread has started)."""
    torch.set_num_threads(1)
    torch.ones(1 << 16).add_(1.0)  # a parallel_for: fixes this thread's count at 1


class _Scratch:
    """One thread's buffers for one block (feature-major, ``BLOCK`` columns)."""

    def __init__(self, hidden: int, hinges: int):  # hinges: 0 where the maps go by segment
        self.state = torch.zeros(DIM + 2, BLOCK)  # latent / g rows, charge, ones
        self.state[DIM + 1] = 1.0
        self.h1 = torch.ones(hidden + 1, BLOCK)  # last row stays 1 (bias of the next product)
        self.h2 = torch.ones(hidden + 1, BLOCK)
        self.st = torch.empty(2 * DIM, BLOCK)
        self.both = torch.empty(2 * DIM, BLOCK)  # un-whitened g for mu- (rows 0-4) and mu+ (5-9)
        self.hinge = torch.empty(DIM, hinges, BLOCK)
        self.f = torch.empty(DIM, BLOCK)
        self.segment = torch.empty(DIM, BLOCK, dtype=torch.int64)
        self.rows = torch.zeros(BLOCK, DIM + 1)  # the padded row-major noise of the last block
        self.ones = torch.ones(DIM, 1)


class FastNoiseToMuon:
    """``NoiseToMuon(flow, sigma)`` on the CPU: noise [n, 6] -> muons [n, 8] (float32);
    `columns` gives the feature-major [8, n] without the transpose.  ``threads``: Python
    threads sharing the blocks (default: torch's intra-op thread count at each call)."""

    def __init__(self, flow: MuonFlow, sigma: float = 1.0, threads: int | None = None):
        self.sigma, self.threads = float(sigma), threads
        self.bound, self.hidden = flow.config.scale_bound, flow.config.hidden
        self.fraction_mu_plus, self.z_plane = flow.config.fraction_mu_plus, flow.config.z_plane
        with torch.no_grad():
            self.layers = [self._fold(c) for c in flow.couplings]
            # un-whitening g = L_q u + mean_q of both charges in one product: [L_q, 0 (charge), mean_q]
            blocks = [torch.cat([flow.white_chol[q], torch.zeros(DIM, 1), flow.white_mean[q][:, None]], 1)
                      for q in (0, 1)]
            self.unwhiten = torch.cat(blocks).float().contiguous()
            inner = flow.config.knots - 2
            self.knots = flow.inv_hinges.view(DIM, inner, 1).float().clone()
            self.coef = flow.inv_coef.T.float().contiguous()  # [5, 5 * inner], block-diagonal
            self.offset = flow.inv_offset[:, None].float().clone()
            self.slope = flow.inv_slope[:, None].float().clone()
            self.segments = _segments(flow)
        self._local = threading.local()
        self._pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, size, pool)

    def _fold(self, coupling) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[slice, slice, slice]]]:
        """Masked weights with the bias as last column, as `Coupling.scale_shift` uses them,
        the last layer's rows kept for the free (transformed) columns only: the masked ones
        would give scale exp(0) = 1 and shift 0, which leave g as it is.  With the runs of
        free columns: (rows of g, rows of the scales, rows of the shifts) per run."""
        mask = coupling.mask
        free = torch.nonzero(mask == 0).flatten()
        first = torch.cat([coupling.first.weight * torch.cat([mask, mask.new_ones(1)]),
                           coupling.first.bias[:, None]], 1)
        middle = torch.cat([coupling.middle.weight, coupling.middle.bias[:, None]], 1)
        rows = torch.cat([free, DIM + free])
        last = torch.cat([coupling.last.weight[rows], coupling.last.bias[rows, None]], 1)
        runs, k = [], len(free)
        for start in range(k):  # maximal runs of consecutive free columns
            if start == 0 or free[start] != free[start - 1] + 1:
                stop = start + 1
                while stop < k and free[stop] == free[stop - 1] + 1:
                    stop += 1
                column = int(free[start])
                runs.append((slice(column, column + stop - start), slice(start, stop), slice(k + start, k + stop)))
        return (*(w.float().contiguous() for w in (first, middle, last)), runs)

    def __call__(self, noise: torch.Tensor) -> torch.Tensor:
        return self.columns(noise).T

    def columns(self, noise: torch.Tensor) -> torch.Tensor:
        """Muons [8, n] (rows x, y, z, px, py, pz, PDG id, weight) from noise [n, 6]."""
        if noise.device.type != "cpu" or noise.dtype != torch.float32 or noise.dim() != 2 or noise.shape[1] != 6:
            raise ValueError(f"FastNoiseToMuon takes float32 CPU noise [n, 6], got {noise.dtype} "
                             f"{tuple(noise.shape)} on {noise.device}")
        noise = noise.contiguous()
        n = noise.shape[0]
        out = torch.empty(_OUT_COLUMNS, n)
        starts = range(0, n, BLOCK)
        threads = min(self.threads or torch.get_num_threads(), len(starts))
        if threads <= 1:
            self._blocks(noise, out, starts)
        else:  # one task per block, so that a thread the system slows down takes fewer of them
            list(self._executor(threads).map(lambda start: self._blocks(noise, out, (start,)), starts))
        return out

    def _blocks(self, noise: torch.Tensor, out: torch.Tensor, starts) -> None:
        with torch.inference_mode():  # thread-local: entered in each worker
            for start in starts:
                self._block(noise, out, start)

    def _executor(self, size: int) -> ThreadPoolExecutor:
        """A pool of ``size`` threads with one intra-op thread each (recreated after a fork)."""
        if self._pool is None or self._pool[:2] != (os.getpid(), size):
            if self._pool is not None and self._pool[0] == os.getpid():
                self._pool[2].shutdown(wait=False)  # another size asked for (a forked child has no such threads)
            threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(size, thread_name_prefix="nf-fast", initializer=_one_intra_op_thread)
            started = threading.Barrier(size)
            list(pool.map(lambda _: started.wait(), range(size)))  # all threads exist, each set to 1 thread
            torch.set_num_threads(threads)  # the default for other new threads, as it was
            self._pool = (os.getpid(), size, pool)
        return self._pool[2]

    def _block(self, noise: torch.Tensor, out: torch.Tensor, start: int) -> None:
        """Muons of noise rows [start, start + BLOCK) into out's columns (NoiseToMuon's order of operations)."""
        s = getattr(self._local, "scratch", None)
        if s is None:
            s = self._local.scratch = _Scratch(self.hidden, 0 if self.segments is not None else self.knots.shape[1])
        rows = noise[start:start + BLOCK]
        m = rows.shape[0]
        if m < BLOCK:  # the reference sees a zero-padded block (run_chunked)
            s.rows[:m] = rows
            s.rows[m:] = 0.0
            rows = s.rows
        x = s.state
        x[:DIM + 1].copy_(rows.T)
        eps = rows[:, :DIM]
        square = torch.matmul(eps * eps, s.ones)[:, 0]  # |eps|^2 as the reference's product
        plus = _step(self.fraction_mu_plus - x[DIM])
        torch.mul(plus, 2.0, out=x[DIM]).sub_(1.0)  # charge
        g = x[:DIM]
        if self.sigma != 1.0:
            g.mul_(self.sigma)
        hidden = self.hidden
        for first, middle, last, runs in self.layers:
            torch.mm(first, x, out=s.h1[:hidden]).relu_()
            torch.mm(middle, s.h1, out=s.h2[:hidden]).relu_()
            st = s.st[:last.shape[0]]
            torch.mm(last, s.h2, out=st)
            st[:last.shape[0] // 2].tanh_().mul_(self.bound).exp_()  # the scales
            for columns, scale, shift in runs:
                g[columns].mul_(st[scale]).add_(st[shift])
        torch.mm(self.unwhiten, x, out=s.both)
        g = torch.where(plus.bool(), s.both[DIM:], s.both[:DIM])
        if self.segments is not None:  # each g's segment of the map (`_segments`), then its line
            lines = self.segments
            nearest = torch.sub(g, lines.first, out=s.f).div_(lines.spacing).round_()
            nearest.clamp_(0.0, lines.last).nan_to_num_(0.0)
            index = s.segment.copy_(nearest).add_(lines.offset)  # of the nearest hinge
            index.add_(torch.gt(g, torch.take(lines.hinges, index)))  # of the line of g's segment
            f = torch.take(lines.slope, index).mul_(g).add_(torch.take(lines.intercept, index))
        else:
            torch.sub(g[:, None, :], self.knots, out=s.hinge).relu_()
            f = torch.mul(g, self.slope, out=s.f).add_(self.offset)
            f.addmm_(self.coef, s.hinge.view(-1, BLOCK))
        o = out[:, start:start + m]
        o[0:2] = f[0:2, :m]
        o[2] = self.z_plane  # the reference's u * 0 + z_plane in float32
        pz = torch.exp(f[4, :m], out=o[5])
        torch.mul(f[2, :m], pz, out=o[3])
        torch.mul(f[3, :m], pz, out=o[4])
        torch.mul(x[DIM, :m], -13.0, out=o[6])
        s2 = self.sigma * self.sigma
        torch.exp(0.5 * (1.0 - s2) * square[:m], out=o[7]).mul_(self.sigma**DIM)


class _SegmentLines(NamedTuple):
    """The inverse Gaussianising maps as lines, one per segment between hinges (`_segments`).
    Feature j's entries start at j (n_h + 1) in ``hinges``, ``slope`` and ``intercept``:
    hinge m and the line of the segment above it share an index."""

    first: torch.Tensor  # [5, 1] the first hinge
    spacing: torch.Tensor  # [5, 1] the hinges' even spacing
    last: float  # index of the last hinge within a feature
    offset: torch.Tensor  # [5, 1] j (n_h + 1)
    hinges: torch.Tensor  # [5 (n_h + 1)], each feature's padded with +inf
    slope: torch.Tensor  # [5 (n_h + 1)]
    intercept: torch.Tensor  # [5 (n_h + 1)]


def _segments(flow: MuonFlow) -> _SegmentLines | None:
    """The inverse Gaussianising maps as one line per segment, for hinges nearly evenly
    spaced in g (`fit_quantile_map` spaces them evenly), else None.

    The map f(g) = a0 + b g + sum_k c_k relu(g - h_k) is, where n hinges lie below g, the
    line (a0 - sum_{k<n} c_k h_k) + (b + sum_{k<n} c_k) g.  With m the hinge nearest to g by
    arithmetic, round((g - h_0) / spacing), n = m + (g > h_m) exactly, as long as no hinge is
    off its even position by a quarter of the spacing: a few operations per value in place of
    a relu per hinge and a product (13 % of a block's time)."""
    inner = flow.config.knots - 2
    hinges = flow.inv_hinges.double().view(DIM, inner)
    if inner < 2:
        return None
    spacing = (hinges[:, -1:] - hinges[:, :1]) / (inner - 1)
    even = hinges[:, :1] + spacing * torch.arange(inner, dtype=torch.float64)
    if not bool((spacing > 0).all()) or not bool(((hinges - even).abs() < 0.25 * spacing).all()):
        return None
    coef = torch.stack([flow.inv_coef.double()[j * inner:(j + 1) * inner, j] for j in range(DIM)])
    zero = torch.zeros(DIM, 1, dtype=torch.float64)
    slope = flow.inv_slope.double()[:, None] + torch.cat([zero, coef.cumsum(1)], 1)
    intercept = flow.inv_offset.double()[:, None] - torch.cat([zero, (coef * hinges).cumsum(1)], 1)
    padded = torch.cat([flow.inv_hinges.float().view(DIM, inner), torch.full((DIM, 1), torch.inf)], 1)
    return _SegmentLines(hinges[:, :1].float(), spacing.float(), float(inner - 1),
                         (torch.arange(DIM) * (inner + 1))[:, None], padded.reshape(-1).contiguous(),
                         slope.float().reshape(-1).contiguous(), intercept.float().reshape(-1).contiguous())


def cpu_engine(flow: MuonFlow, sigma: float = 1.0):
    """The CPU inference engine of ``NoiseToMuon(flow, sigma)``: `FastNoiseToMuon` for
    affine couplings (the ones it folds), the module itself for spline couplings."""
    if flow.config.coupling == "affine":
        return FastNoiseToMuon(flow, sigma)
    return NoiseToMuon(flow, sigma).eval()
