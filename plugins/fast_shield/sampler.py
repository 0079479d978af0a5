"""`TableSampler`: draw a step's loss, angle and displacement from `StepTables`.

Per muon and step: the momentum and step-length nodes are picked at random between
the two neighbours with linear weights in log p and log L (so the sampled
distribution interpolates between the tabulated ones); then one uniform number and
one gather per quantity invert a tabulated CDF.  Values come back rescaled to the
muon's own step: dE = eps rho L [GeV], theta = a sigma [rad] with a uniform azimuth,
d = L theta / 2 + r L sigma / sqrt 12 [cm] with an independent azimuth.  Tables built
without the catastrophic losses (radiative and knock-on above ``v_catastrophic`` of E)
get them added (`CatastrophicLosses`, one more uniform number per muon).
"""

from __future__ import annotations

import math

import torch

from shipfastsim.plugins.fast_shield.catastrophic import CatastrophicLosses
from shipfastsim.plugins.fast_shield.tables import (
    GRID_ANGLE,
    GRID_DISP,
    GRID_LOSS,
    LOSS_CLASS_EDGES,
    U_ANGLE,
    U_DISP,
    U_LOSS,
    StepTables,
)
from shipfastsim.transport.mechanics import scattering_sigma

__all__ = ["TableSampler"]


class _InverseCdf:
    """Linear interpolation in one tabulated inverse CDF per row.

    The node index is computed in closed form from the grid's construction
    (`tables.u_grid`), which is several times cheaper than a binary search; a
    rounding slip of one node at a node is harmless since w is clamped to [0, 1].
    Row and node indices are carried as floats (exact: tables have far fewer than
    2^24 entries) and turned into one integer index per gather."""

    def __init__(self, values: torch.Tensor, grid: tuple[int, float, int, float], u: torch.Tensor,
                 geometric_tail: bool = False):
        self.values = values.reshape(-1).contiguous()
        self.u = u
        self.n = u.numel()
        self.inv_du = 1.0 / (u[1:] - u[:-1])
        n_lin, split, n_tail, tail_min = grid
        self.n_lin, self.split = n_lin, split
        self.lin_scale = n_lin / split
        self.log_scale = (n_tail - 1) / math.log((1.0 - split) / tail_min)
        self.log_tail0 = math.log(1.0 - split)
        # Geometric interpolation between tail nodes (the loss tables' convention):
        # per lower node, 1 where it applies (tail node, both values positive) and the
        # log of the values, so that a draw costs one exp.
        self.geometric_tail = geometric_tail
        if geometric_tail:
            lo, hi = self.values, torch.roll(self.values, -1)
            node = torch.arange(self.values.numel(), device=values.device) % self.n
            self.geometric = ((node >= n_lin) & (node < self.n - 1) & (lo > 0) & (hi > 0)).to(values.dtype)
            self.log_values = torch.log(self.values.clamp_min(torch.finfo(values.dtype).tiny))

    def __call__(self, row: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Inverse CDF of table rows ``row`` (float, integral values) at probabilities r."""
        tail = self.n_lin + (self.log_tail0 - torch.log1p(-r.clamp_max(1.0 - 1e-7))) * self.log_scale
        in_tail = torch.ge(r, self.split).view(torch.uint8).to(r.dtype)
        k = torch.floor(r * self.lin_scale + in_tail * (tail - r * self.lin_scale)).clamp(0.0, self.n - 2.0)
        k_index = k.to(torch.int64)
        w = ((r - self.u.index_select(0, k_index)) * self.inv_du.index_select(0, k_index)).clamp(0.0, 1.0)
        base = (row * self.n + k).to(torch.int64)
        lo, hi = self.values.index_select(0, base), self.values.index_select(0, base + 1)
        linear = lo + w * (hi - lo)
        if not self.geometric_tail:
            return linear
        log_lo, log_hi = self.log_values.index_select(0, base), self.log_values.index_select(0, base + 1)
        geometric = torch.exp(log_lo + w * (log_hi - log_lo))
        return linear + self.geometric.index_select(0, base) * (geometric - linear)


class TableSampler:
    """Step sampling on one device.

    Args:
        tables: the step tables.
        rows: table row of each geometry material index (`StepTables.material_index`).
        density: density [g/cm3] of each geometry material (scale included).
        catastrophic: the losses the tables leave out (`TableSettings.v_catastrophic`;
            None for tables that hold every loss).
    """

    def __init__(self, tables: StepTables, rows: list[int], density: torch.Tensor, device: torch.device,
                 dtype: torch.dtype, catastrophic: CatastrophicLosses | None = None):
        self.catastrophic = catastrophic
        kw = {"dtype": dtype, "device": device}
        s = tables.settings
        self.n_p, self.n_l = len(s.p_nodes), len(s.l_nodes)
        self.log_p0, self.log_l0 = math.log(s.p_nodes[0]), math.log(s.l_nodes[0])
        self.inv_dlog_p = (self.n_p - 1) / math.log(s.p_nodes[-1] / s.p_nodes[0])
        self.inv_dlog_l = (self.n_l - 1) / math.log(s.l_nodes[-1] / s.l_nodes[0])
        self.rows = torch.tensor(rows, **kw)
        self.density = density
        self.n_classes = tables.angle.shape[3]
        self.loss = _InverseCdf(torch.as_tensor(tables.loss, **kw), GRID_LOSS, torch.as_tensor(U_LOSS, **kw),
                                geometric_tail=True)
        self.angle = _InverseCdf(torch.as_tensor(tables.angle, **kw), GRID_ANGLE, torch.as_tensor(U_ANGLE, **kw))
        self.disp = _InverseCdf(torch.as_tensor(tables.disp, **kw), GRID_DISP, torch.as_tensor(U_DISP, **kw))
        self.class_edges = tuple(LOSS_CLASS_EDGES)

    @staticmethod
    def _node(value: torch.Tensor, log0: float, inv_dlog: float, n: int, r: torch.Tensor) -> torch.Tensor:
        """Node index (as a float) of ``value`` on a log grid, drawn between its two
        neighbours with linear weights: floor(f + r) is the upper one with probability
        frac(f), r uniform."""
        f = ((torch.log(value) - log0) * inv_dlog).clamp(0.0, n - 1.0)
        return torch.floor(f + r).clamp_max(n - 1.0)

    def sample(self, material: torch.Tensor, p: torch.Tensor, energy: torch.Tensor, length: torch.Tensor,
               t_step: torch.Tensor, generator: torch.Generator):
        """The stepping core's sampler interface (`shipfastsim.transport.StepSampler`):
        (loss [GeV], tx, ty [rad], dx, dy [cm]) for muons of momentum p [GeV/c] and
        energy E [GeV] over ``length`` [cm] of ``t_step`` radiation lengths."""
        rows = 7 if self.catastrophic is None else 8
        r = torch.rand((rows, p.shape[0]), generator=generator, device=p.device, dtype=p.dtype)
        loss, tx, ty, dx, dy = self.sample_uniform(material, p, length, scattering_sigma(p, energy, t_step), r)
        if self.catastrophic is not None:
            hit, extra = self.catastrophic.sample(material, energy, length, r[7], generator)
            loss = loss.index_add(0, hit, extra)
        return loss, tx, ty, dx, dy

    def sample_uniform(self, material: torch.Tensor, p: torch.Tensor, length: torch.Tensor, sigma: torch.Tensor,
                       r: torch.Tensor):
        """Energy loss [GeV], projected angles tx, ty [rad] and displacements dx, dy [cm]
        from the (7, N) uniform random numbers ``r`` (pure tensor arithmetic and gathers)."""
        i = self._node(p.clamp_min(1e-6), self.log_p0, self.inv_dlog_p, self.n_p, r[0])
        j = self._node(length, self.log_l0, self.inv_dlog_l, self.n_l, r[1])
        row = (self.rows.index_select(0, material) * self.n_p + i) * self.n_l + j
        loss = self.loss(row, r[2]) * self.density.index_select(0, material) * length
        klass = sum(torch.ge(r[2], edge).view(torch.uint8) for edge in self.class_edges).to(r.dtype)
        theta = self.angle(row * self.n_classes + klass, r[3]) * sigma
        phi = (2.0 * math.pi) * r[4]
        tx, ty = theta * torch.cos(phi), theta * torch.sin(phi)
        resid = self.disp(row, r[5]) * (length * sigma / math.sqrt(12.0))
        psi = (2.0 * math.pi) * r[6]
        dx = 0.5 * length * tx + resid * torch.cos(psi)
        dy = 0.5 * length * ty + resid * torch.sin(psi)
        return loss, tx, ty, dx, dy
