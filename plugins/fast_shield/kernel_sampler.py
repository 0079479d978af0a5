"""The step sampler of the compiled kernel: `StepTables` (and the catastrophic losses) per muon.

The draws are those of `sampler.TableSampler` and `catastrophic.CatastrophicLosses`,
one muon at a time: momentum and step-length nodes picked at random between their two
neighbours (linear weights in log p and log L), one uniform number per quantity
inverting the tabulated CDF (node index in closed form from the u grid's
construction, linear interpolation, geometric in the loss table's tail), the loss
class picking the angle table, uniform azimuths; then with probability
rate(E) rho L one catastrophic interaction (radiative process by its share of the
rate, v by the reference's inverse CDF in ln v; knock-on electrons by rejection from
1/T^2), as the reference draws them.  `sampler_arrays` packs the tables once per
geometry (float64 numpy arrays, `SamplerArrays`); `sample_step` is `jitable` scalar
code for the CPU and CUDA kernels.  Units: GeV, cm, rad.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from shipfastsim.plugins.fast_shield.tables import GRID_ANGLE, GRID_DISP, GRID_LOSS, LOSS_CLASS_EDGES, StepTables
from shipfastsim.plugins.reference.cross_sections import MUON_MASS_GEV
from shipfastsim.plugins.reference.energy_loss import max_energy_transfer
from shipfastsim.transport.jit import jitable, uniform

__all__ = ["SamplerArrays", "sampler_arrays", "sample_step", "DRAWS_PER_STEP"]

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


def sampler_arrays(tables: StepTables, materials, density) -> SamplerArrays:
    """`SamplerArrays` for the geometry materials ``materials`` ((name, density scale)
    per `GeometryLookup.materials` index) of densities ``density`` [g/cm3]."""
    import torch

    from shipfastsim.geometry import get_material
    from shipfastsim.plugins.fast_shield.catastrophic import CatastrophicLosses
    from shipfastsim.plugins.fast_shield.tables import U_ANGLE, U_DISP, U_LOSS

    s = tables.settings
    loss = np.asarray(tables.loss, dtype=np.float64).reshape(-1)
    n_loss = len(U_LOSS)
    node = np.arange(loss.size) % n_loss
    upper = np.roll(loss, -1)
    geometric = ((node >= GRID_LOSS[0]) & (node < n_loss - 1) & (loss > 0) & (upper > 0)).astype(np.float64)
    grids = [np.asarray(u, dtype=np.float64) for u in (U_LOSS, U_ANGLE, U_DISP)]
    width = max(len(u) for u in grids)
    u = np.ones((3, width))
    inv_du = np.zeros((3, width))
    for k, g in enumerate(grids):
        u[k, :len(g)] = g
        inv_du[k, :len(g) - 1] = 1.0 / np.diff(g)
    n_p, n_l = len(s.p_nodes), len(s.l_nodes)
    nodes = [math.log(s.p_nodes[0]), (n_p - 1) / math.log(s.p_nodes[-1] / s.p_nodes[0]), n_p,
             math.log(s.l_nodes[0]), (n_l - 1) / math.log(s.l_nodes[-1] / s.l_nodes[0]), n_l,
             tables.angle.shape[3], s.v_catastrophic or 0.0]
    rows = np.array([tables.material_index(n, k) for n, k in materials], dtype=np.int64)
    cat_energy, cat_rate = np.zeros(3), np.zeros((len(materials), 2, 5))
    rad_cdf = rad_log_v = np.zeros((len(materials), 3, 2, 2))
    if s.v_catastrophic is not None:
        found = CatastrophicLosses([(get_material(n), k) for n, k in materials], s.v_catastrophic,
                                   torch.device("cpu"), torch.float64)
        cat_energy, cat_rate, rad_cdf, rad_log_v = found.kernel_arrays()
    return SamplerArrays(loss, np.log(np.maximum(loss, np.finfo(np.float64).tiny)), geometric,
                         np.asarray(tables.angle, dtype=np.float64).reshape(-1),
                         np.asarray(tables.disp, dtype=np.float64).reshape(-1), u, inv_du,
                         np.array([_grid(*GRID_LOSS), _grid(*GRID_ANGLE), _grid(*GRID_DISP)]),
                         np.array(nodes, dtype=np.float64), rows, np.ascontiguousarray(density, dtype=np.float64),
                         cat_energy, cat_rate, rad_cdf, rad_log_v)


@jitable
def _inverse_cdf(tab, which, values, row, r):
    """Tabulated inverse CDF ``which`` (0 loss, 1 angle, 2 disp) of table row ``row`` at r
    (`sampler._InverseCdf`): (value, flat index of the lower node, interpolation weight)."""
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
def _radiative(tab, material, process, energy, r_bin, r_v):
    """Relative transfer v of a radiative process above the cut (`energy_loss.sample_radiative`)."""
    log_e0, inv_dlog_e, n_e = tab.cat_energy
    pos = (min(max(math.log(energy), log_e0), log_e0 + (n_e - 1.0) / inv_dlog_e) - log_e0) * inv_dlog_e
    i = int(min(max(math.floor(pos), 0.0), n_e - 2.0))
    if r_bin < pos - i:
        i += 1
    cdf, log_v = tab.rad_cdf[material, process, i], tab.rad_log_v[material, process, i]
    lo, hi = 1, cdf.shape[0] - 1
    while lo < hi:  # first node with cdf >= r_v, at least 1
        mid = (lo + hi) // 2
        if cdf[mid] < r_v:
            lo = mid + 1
        else:
            hi = mid
    frac = min(max((r_v - cdf[lo - 1]) / max(cdf[lo] - cdf[lo - 1], 1e-300), 0.0), 1.0)
    return math.exp(log_v[lo - 1] + frac * (log_v[lo] - log_v[lo - 1]))


@jitable
def _knock_on(energy, cut, key, counter):
    """Knock-on kinetic energy [GeV] above ``cut`` (`energy_loss.sample_knock_on`): 1/T^2
    accepted with the spin-1/2 bracket over its maximum; returns (T, next counter)."""
    gamma = energy / MUON_MASS_GEV
    beta2 = 1.0 - 1.0 / (gamma * gamma)
    w = max(max_energy_transfer(gamma), cut * (1.0 + 1e-9))
    top = 1.0 + w * w / (2.0 * energy * energy)
    while True:
        t = 1.0 / (1.0 / cut - uniform(key, counter) * (1.0 / cut - 1.0 / w))
        accept = uniform(key, counter + 1)
        counter += 2
        if accept * top < 1.0 - beta2 * t / w + t * t / (2.0 * energy * energy):
            return t, counter


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
    eps, base, w = _inverse_cdf(tab, 0, tab.loss, row, r_loss)
    if tab.loss_geometric[base] > 0.0:
        eps = math.exp(tab.loss_log[base] + w * (tab.loss_log[base + 1] - tab.loss_log[base]))
    loss = eps * tab.density[material] * length
    klass = int(r_loss >= _CLASS_1) + int(r_loss >= _CLASS_2) + int(r_loss >= _CLASS_3)
    theta = _inverse_cdf(tab, 1, tab.angle, row * int(nodes[6]) + klass, uniform(key, counter + 3))[0] * sigma
    phi = 2.0 * math.pi * uniform(key, counter + 4)
    tx, ty = theta * math.cos(phi), theta * math.sin(phi)
    resid = _inverse_cdf(tab, 2, tab.disp, row, uniform(key, counter + 5))[0] * (length * sigma / math.sqrt(12.0))
    psi = 2.0 * math.pi * uniform(key, counter + 6)
    dx, dy = 0.5 * length * tx + resid * math.cos(psi), 0.5 * length * ty + resid * math.sin(psi)
    counter += DRAWS_PER_STEP
    v_cat = nodes[7]
    if v_cat > 0.0:
        log_e0, inv_dlog_e, n_e = tab.cat_energy
        f = min(max((math.log(energy) - log_e0) * inv_dlog_e, 0.0), n_e - 1.0 - 1e-3)
        k = int(math.floor(f))
        rates = tab.cat_rate[material]
        w = f - k
        if uniform(key, counter - 1) < (rates[k, 4] + w * (rates[k + 1, 4] - rates[k, 4])) * length:
            choice = uniform(key, counter) * (rates[k, 4] + w * (rates[k + 1, 4] - rates[k, 4]))
            counter += 1
            process = 0
            cumulative = rates[k, 0] + w * (rates[k + 1, 0] - rates[k, 0])
            while process < 3 and choice >= cumulative:
                process += 1
                cumulative += rates[k, process] + w * (rates[k + 1, process] - rates[k, process])
            if process == 3:
                t, counter = _knock_on(energy, v_cat * energy, key, counter)
                loss += t
            else:
                loss += _radiative(tab, material, process, energy, uniform(key, counter),
                                   uniform(key, counter + 1)) * energy
                counter += 2
    return loss, tx, ty, dx, dy, counter
