"""`TableSampler`: draw a step's loss, angle and displacement from `StepTables`.

Per muon and step: the momentum and step-length nodes are picked at random between
the two neighbours with linear weights in log p and log L (so the sampled
distribution interpolates between the tabulated ones); then one uniform number and
one gather per quantity invert a tabulated CDF.  Values come back rescaled to the
muon's own step: dE = eps rho L [GeV], theta = a sigma [rad] with a uniform azimuth,
d = L theta / 2 + r L sigma / sqrt 12 [cm] with an independent azimuth.
"""

from __future__ import annotations

import math

import torch

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
from shipfastsim.transport.mechanics import highland_sigma

__all__ = ["TableSampler"]


class _InverseCdf:
    """Linear interpolation in one tabulated inverse CDF per row.

    The node index is computed in closed form from the grid's construction
    (`tables.u_grid`), which is several times cheaper than a binary search; a
    rounding slip of one node at a node is harmless since w is clamped to [0, 1]."""

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
        # Geometric interpolation between tail nodes (the loss tables' convention).
        self.geometric_tail = geometric_tail

    def __call__(self, row: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        tail = self.n_lin + (self.log_tail0 - torch.log1p(-r.clamp_max(1.0 - 1e-7))) * self.log_scale
        k = torch.where(r < self.split, r * self.lin_scale, tail).long().clamp(0, self.n - 2)
        w = ((r - self.u[k]) * self.inv_du[k]).clamp(0.0, 1.0)
        base = row * self.n + k
        lo, hi = self.values[base], self.values[base + 1]
        linear = lo + w * (hi - lo)
        if not self.geometric_tail:
            return linear
        tail = (k >= self.n_lin) & (lo > 0) & (hi > 0)
        safe_lo = torch.where(tail, lo, torch.ones_like(lo))
        geometric = safe_lo * torch.exp(w * torch.log(torch.where(tail, hi, torch.ones_like(hi)) / safe_lo))
        return torch.where(tail, geometric, linear)


class TableSampler:
    """Step sampling on one device.

    Args:
        tables: the step tables.
        rows: table row of each geometry material index (`StepTables.material_index`).
        density: density [g/cm3] of each geometry material (scale included).
    """

    def __init__(self, tables: StepTables, rows: list[int], density: torch.Tensor, device: torch.device,
                 dtype: torch.dtype):
        kw = {"dtype": dtype, "device": device}
        s = tables.settings
        self.n_p, self.n_l = len(s.p_nodes), len(s.l_nodes)
        self.log_p0, self.log_l0 = math.log(s.p_nodes[0]), math.log(s.l_nodes[0])
        self.inv_dlog_p = (self.n_p - 1) / math.log(s.p_nodes[-1] / s.p_nodes[0])
        self.inv_dlog_l = (self.n_l - 1) / math.log(s.l_nodes[-1] / s.l_nodes[0])
        self.rows = torch.tensor(rows, dtype=torch.int64, device=device)
        self.density = density
        self.n_classes = tables.angle.shape[3]
        self.loss = _InverseCdf(torch.as_tensor(tables.loss, **kw), GRID_LOSS, torch.as_tensor(U_LOSS, **kw),
                                geometric_tail=True)
        self.angle = _InverseCdf(torch.as_tensor(tables.angle, **kw), GRID_ANGLE, torch.as_tensor(U_ANGLE, **kw))
        self.disp = _InverseCdf(torch.as_tensor(tables.disp, **kw), GRID_DISP, torch.as_tensor(U_DISP, **kw))
        self.class_edges = torch.as_tensor(LOSS_CLASS_EDGES, **kw)

    @staticmethod
    def _node(value: torch.Tensor, log0: float, inv_dlog: float, n: int, r: torch.Tensor) -> torch.Tensor:
        f = ((torch.log(value) - log0) * inv_dlog).clamp(0.0, n - 1.0)
        lower = f.floor().clamp_max(n - 2)
        return (lower + (r < f - lower).to(f.dtype)).long()

    def sample(self, material: torch.Tensor, p: torch.Tensor, energy: torch.Tensor, length: torch.Tensor,
               t_before: torch.Tensor, t_step: torch.Tensor, generator: torch.Generator):
        """The stepping core's sampler interface (`shipfastsim.transport.StepSampler`):
        (loss [GeV], tx, ty [rad], dx, dy [cm]) for muons of momentum p [GeV/c] and
        energy E [GeV] over ``length`` [cm] after ``t_before`` radiation lengths."""
        r = torch.rand((7, p.shape[0]), generator=generator, device=p.device, dtype=p.dtype)
        return self.sample_uniform(material, p, length, highland_sigma(p, energy, t_before, t_step), r)

    def sample_uniform(self, material: torch.Tensor, p: torch.Tensor, length: torch.Tensor, sigma: torch.Tensor,
                       r: torch.Tensor):
        """Energy loss [GeV], projected angles tx, ty [rad] and displacements dx, dy [cm]
        from the (7, N) uniform random numbers ``r`` (pure tensor arithmetic and gathers)."""
        i = self._node(p.clamp_min(1e-6), self.log_p0, self.inv_dlog_p, self.n_p, r[0])
        j = self._node(length, self.log_l0, self.inv_dlog_l, self.n_l, r[1])
        row = (self.rows[material] * self.n_p + i) * self.n_l + j
        loss = self.loss(row, r[2]) * self.density[material] * length
        klass = torch.bucketize(r[2], self.class_edges, right=True)
        theta = self.angle(row * self.n_classes + klass, r[3]) * sigma
        phi = (2.0 * math.pi) * r[4]
        tx, ty = theta * torch.cos(phi), theta * torch.sin(phi)
        resid = self.disp(row, r[5]) * (length * sigma / math.sqrt(12.0))
        psi = (2.0 * math.pi) * r[6]
        dx = 0.5 * length * tx + resid * torch.cos(psi)
        dy = 0.5 * length * ty + resid * torch.sin(psi)
        return loss, tx, ty, dx, dy
