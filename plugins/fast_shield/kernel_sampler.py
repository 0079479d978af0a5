"""The step sampler of the compiled kernel: `StepTables` (and the catastrophic losses) per muon.

One muon at a time: momentum and step-length nodes picked at random between their two
neighbours (linear weights in log p and log L), one uniform number per quantity
inverting the tabulated CDF (node index in closed form from the u grid's
construction, linear interpolation, geometric in the loss table's tail), the loss
class picking the angle table, uniform azimuths; then with probability
rate(E) rho L one catastrophic interaction (radiative process by its share of the
rate), drawn by the reference's own scalar code (`reference.kernel_physics`:
`radiative_transfer`, `knock_on`).  `sampler_arrays` packs the tables once per
geometry (float64 numpy arrays, `SamplerArrays`); `sample_step` is `jitable` scalar
code for the CPU and CUDA kernels.  Units: GeV, cm, rad.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from shipfastsim.plugins.fast_shield.tables import GRID_ANGLE, GRID_DISP, GRID_LOSS, LOSS_CLASS_EDGES, StepTables
from shipfastsim.plugins.reference.kernel_physics import knock_on, radiative_transfer
from shipfastsim.transport.jit import jitable, uniform
from shipfastsim.transport.mechanics import azimuth

__all__ = ["SamplerArrays", "sampler_arrays", "grid_arrays", "inverse_cdf", "catastrophic_loss", "sample_step",
           "DRAWS_PER_STEP"]

_CLASS_1, _CLASS_2, _CLASS_3 = LOSS_CLASS_EDGES
#: Uniform numbers a step consumes before any catastrophic interaction (nodes 2, loss,
#: angle, azimuth, displacement, its azimuth, interaction).
DRAWS_PER_STEP = 8


class SamplerArrays(NamedTuple):
    """The tables of one geometry's materials for the kernel (float64 numpy arrays)."""

    loss: np.ndarray  # (rows * n_u,) flat inverse CDFs of eps = dE / (rho L) [GeV cm2/g]
    loss_log: np.ndarray  # ln of the loss values (geometric tail interpolation)
    loss_geometric: np.ndarray  # 1 where the node's interval interpolates geometrically
    angle: np.ndarray  # (rows * n_classes * n_u,) theta / sigma
    disp: np.ndarray  # (rows * n_u,) residual displacement / (L sigma / sqrt 12)
    u: np.ndarray  # (3, n_max) the u grids of loss, angle, disp (padded)
    inv_du: np.ndarray  # (3, n_max)
    grid: np.ndarray  # (3, 6): n_lin, split, lin_scale, log_scale, log_tail0, n per table
    nodes: np.ndarray  # log p0, 1/dlog p, n_p, log L0, 1/dlog L, n_L, n_classes, v_catastrophic (0: none)
    rows: np.ndarray  # (M,) int64 table material of each geometry material
    density: np.ndarray  # (M,) g/cm3 of each geometry material
    cat_energy: np.ndarray  # ln E0, 1/dln E, n_E of the catastrophic rate grid
    cat_rate: np.ndarray  # (M, n_E, 5): rate per cm of brems, pair, photonuclear, knock-on, total
    rad_cdf: np.ndarray  # (M, 3, n_E, N_V) cumulative distribution in ln v per radiative process
    rad_log_v: np.ndarray  # (M, 3, n_E, N_V)


def _grid(n_lin: int, split: float, n_tail: int, tail_min: float) -> list[float]:
    return [n_lin, split, n_lin / split, (n_tail - 1) / math.log((1.0 - split) / tail_min), math.log(1.0 - split),
            n_lin + n_tail + 1]


def grid_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, 1/du, grid parameters) of the loss, angle and displacement tables' u grids
    (`SamplerArrays.u`, ``inv_du``, ``grid``)."""
    from shipfastsim.plugins.fast_shield.tables import U_ANGLE, U_DISP, U_LOSS

    grids = [np.asarray(u, dtype=np.float64) for u in (U_LOSS, U_ANGLE, U_DISP)]
    width = max(len(u) for u in grids)
    u, inv_du = np.ones((3, width)), np.zeros((3, width))
    for k, g in enumerate(grids):
        u[k, :len(g)] = g
        inv_du[k, :len(g) - 1] = 1.0 / np.diff(g)
    return u, inv_du, np.array([_grid(*GRID_LOSS), _grid(*GRID_ANGLE), _grid(*GRID_DISP)])


def sampler_arrays(tables: StepTables, materials, density) -> SamplerArrays:
    """`SamplerArrays` for the geometry materials ``materials`` ((name, density scale)
    per `GeometryLookup.materials` index) of densities ``density`` [g/cm3]."""
    from shipfastsim.geometry import get_material
    from shipfastsim.plugins.fast_shield.catastrophic import catastrophic_arrays
    from shipfastsim.plugins.fast_shield.tables import U_LOSS

    s = tables.settings
    loss = np.asarray(tables.loss, dtype=np.float64).reshape(-1)
    n_loss = len(U_LOSS)
    node = np.arange(loss.size) % n_loss
    upper = np.roll(loss, -1)
    geometric = ((node >= GRID_LOSS[0]) & (node < n_loss - 1) & (loss > 0) & (upper > 0)).astype(np.float64)
    u, inv_du, grid = grid_arrays()
    n_p, n_l = len(s.p_nodes), len(s.l_nodes)
    nodes = [math.log(s.p_nodes[0]), (n_p - 1) / math.log(s.p_nodes[-1] / s.p_nodes[0]), n_p,
             math.log(s.l_nodes[0]), (n_l - 1) / math.log(s.l_nodes[-1] / s.l_nodes[0]), n_l,
             tables.angle.shape[3], s.v_catastrophic or 0.0]
    rows = np.array([tables.material_index(n, k) for n, k in materials], dtype=np.int64)
    cat_energy, cat_rate = np.zeros(3), np.zeros((len(materials), 2, 5))
    rad_cdf = rad_log_v = np.zeros((len(materials), 3, 2, 2))
    if s.v_catastrophic is not None:
        cat_energy, cat_rate, rad_cdf, rad_log_v = catastrophic_arrays(
            [(get_material(n), k) for n, k in materials], s.v_catastrophic)
    # The tables' values are float16 on disk, so float32 holds them exactly: the kernel
    # computes in float64 as before, with half the memory per table row (a step reads three
    # rows at random: the cache misses are a sixth of its time).
    return SamplerArrays(loss.astype(np.float32), np.log(np.maximum(loss, np.finfo(np.float64).tiny)),
                         geometric.astype(np.uint8), np.asarray(tables.angle, dtype=np.float32).reshape(-1),
                         np.asarray(tables.disp, dtype=np.float32).reshape(-1), u, inv_du, grid,
                         np.array(nodes, dtype=np.float64), rows, np.ascontiguousarray(density, dtype=np.float64),
                         cat_energy, cat_rate, rad_cdf, rad_log_v)


@jitable
def inverse_cdf(tab, which, values, row, r):
    """Tabulated inverse CDF ``which`` (0 loss, 1 angle, 2 disp) of table row ``row`` at r
    (the node index in closed form from the grid's construction, `tables.u_grid`,
    several times cheaper than a binary search): (value, flat index of the lower node, interpolation weight)."""
    n_lin, split, lin_scale, log_scale, log_tail0, n = tab.grid[which]
    if r < split:
        k = math.floor(r * lin_scale)
    else:
        k = math.floor(n_lin + (log_tail0 - math.log1p(-min(r, 1.0 - 1e-7))) * log_scale)
    k = int(min(max(k, 0.0), n - 2.0))
    w = min(max((r - tab.u[which, k]) * tab.inv_du[which, k], 0.0), 1.0)
    base = row * int(n) + k
    lo = values[base]
    return lo + w * (values[base + 1] - lo), base, w


@jitable
def _node(value, log0, inv_dlog, n, r):
    """Log-grid node of ``value``, drawn between its two neighbours with linear weights."""
    f = min(max((math.log(value) - log0) * inv_dlog, 0.0), n - 1.0)
    return int(min(math.floor(f + r), n - 1.0))


@jitable
def catastrophic_loss(tab, material, energy, length, r_hit, key, counter):
    """The loss [GeV] above ``v_catastrophic`` E over ``length`` [cm] at energy E [GeV]:
    one interaction with probability rate(E) rho L (``r_hit`` uniform; a second one in
    the same step, a fraction lambda / 2 of them, is not drawn), its process by its share
    of the rate, its transfer as the reference draws it; returns (loss, next counter)."""
    v_cat = tab.nodes[7]
    log_e0, inv_dlog_e, n_e = tab.cat_energy
    f = min(max((math.log(energy) - log_e0) * inv_dlog_e, 0.0), n_e - 1.0 - 1e-3)
    k = int(math.floor(f))
    rates = tab.cat_rate[material]
    w = f - k
    total = rates[k, 4] + w * (rates[k + 1, 4] - rates[k, 4])
    if r_hit >= total * length:
        return 0.0, counter
    choice = uniform(key, counter) * total
    counter += 1
    process = 0
    cumulative = rates[k, 0] + w * (rates[k + 1, 0] - rates[k, 0])
    while process < 3 and choice >= cumulative:
        process += 1
        cumulative += rates[k, process] + w * (rates[k + 1, process] - rates[k, process])
    if process == 3:
        return knock_on(energy, v_cat * energy, key, counter)
    v = radiative_transfer(tab, material, process, energy, uniform(key, counter), uniform(key, counter + 1))
    return v * energy, counter + 2


@jitable
def sample_step(tab, material, p, energy, length, sigma, key, counter):
    """Energy loss [GeV], angles tx, ty [rad], displacements dx, dy [cm] of one step of
    ``length`` [cm] in ``material`` at momentum p [GeV/c], energy E [GeV], scattering
    width ``sigma`` [rad]; draws from stream ``key`` from ``counter`` on and returns the
    counter after them."""
    nodes = tab.nodes
    i = _node(max(p, 1e-6), nodes[0], nodes[1], nodes[2], uniform(key, counter))
    j = _node(length, nodes[3], nodes[4], nodes[5], uniform(key, counter + 1))
    row = (tab.rows[material] * int(nodes[2]) + i) * int(nodes[5]) + j
    r_loss = uniform(key, counter + 2)
    eps, base, w = inverse_cdf(tab, 0, tab.loss, row, r_loss)
    if tab.loss_geometric[base] > 0.0:
        eps = math.exp(tab.loss_log[base] + w * (tab.loss_log[base + 1] - tab.loss_log[base]))
    loss = eps * tab.density[material] * length
    klass = int(r_loss >= _CLASS_1) + int(r_loss >= _CLASS_2) + int(r_loss >= _CLASS_3)
    theta = inverse_cdf(tab, 1, tab.angle, row * int(nodes[6]) + klass, uniform(key, counter + 3))[0] * sigma
    cos_phi, sin_phi = azimuth(uniform(key, counter + 4))
    tx, ty = theta * cos_phi, theta * sin_phi
    resid = inverse_cdf(tab, 2, tab.disp, row, uniform(key, counter + 5))[0] * (length * sigma / math.sqrt(12.0))
    cos_psi, sin_psi = azimuth(uniform(key, counter + 6))
    dx, dy = 0.5 * length * tx + resid * cos_psi, 0.5 * length * ty + resid * sin_psi
    counter += DRAWS_PER_STEP
    if nodes[7] > 0.0:
        extra, counter = catastrophic_loss(tab, material, energy, length, uniform(key, counter - 1), key, counter)
        loss += extra
    return loss, tx, ty, dx, dy, counter
