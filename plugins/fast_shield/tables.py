"""Pre-computed step tables: energy loss and scattering of one step, per bin.

For every material (name, density scale), every node of a log-spaced momentum grid
``P_NODES`` [GeV/c] and of a log-spaced step-length grid ``L_NODES`` [cm], the
reference physics (`StepPhysics.sample_step`, chained over the reference's own
sub-steps) is sampled for many muons and reduced to inverse-CDF tables:

* ``loss``: quantiles of eps = dE / (rho L) [GeV cm2/g] on the u grid ``U_LOSS``;
* ``angle``: quantiles of a = theta_space / sigma, where sigma is the projected core
  width of the whole step (`mechanics.scattering_sigma`), *conditional on the loss class* (loss rank
  below 0.5, 0.5-0.9, 0.9-0.99, above 0.99): this keeps the loss-angle correlation;
* ``disp``: quantiles of r = |d - L theta / 2| / (L sigma / sqrt 12), the lateral
  displacement left after removing its part correlated with the angle.

The loss distribution has a radiative tail (inverse CDF convex in u): linear
interpolation between its quantile nodes would overestimate the mean, so in the
tail part of the grid (u above 0.8) the sampler interpolates geometrically
(`loss_table_mean` is the matching mean), and the last node (1 - 1e-4), which rests
on a few samples, is moved so that each bin's tabulated mean equals the mean of its
samples: `match_sample_mean`.

The reference is sampled without the losses above ``v_catastrophic`` of E (radiative
and knock-on, `StepPhysics(v_max=...)`): those the sampler draws from the cross
sections (`catastrophic.catastrophic_arrays`): on the quantile grid they would fill its
sparse tail, whose last 1e-4 rests on a handful of samples and caps a step's loss.

Storing normalised values lets the stepper rescale to the muon's actual p, L and
traversed radiation lengths.  Tables are cached in an ``.npz`` file (float16 values,
``allow_pickle=False``) whose name and metadata carry a hash of every setting;
`load_tables` refuses a file whose format version or hash does not match.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from shipfastsim.geometry.materials import get_material
from shipfastsim.plugins.reference.cross_sections import MUON_MASS_GEV
from shipfastsim.plugins.reference.physics import PHYSICS_REVISION, StepPhysics
from shipfastsim.transport.mechanics import SCATTERING_CORE_FACTOR, rough_dedx, scattering_sigma

__all__ = ["FORMAT_VERSION", "GRID_LOSS", "GRID_ANGLE", "GRID_DISP", "U_LOSS", "U_ANGLE", "U_DISP", "TableSettings",
           "StepTables", "u_grid", "build_tables", "save_tables", "load_tables", "tables_filename",
           "match_sample_mean", "match_second_moment", "merge_tables", "reduce_bin", "GEANT4_RELEASE",
           "SHIPPED_SETTINGS",
           "loss_table_mean"]

#: Bump when the file layout or the meaning of a stored array changes.
FORMAT_VERSION = 5
#: The Geant4 release that ``physics="geant4"`` tables are built with (geant4-pybind 0.1.3);
#: hashed into their name, so tables of another release do not load as these.
GEANT4_RELEASE = "geant4-11-04-patch-01"
#: Loss classes are split at these ranks (the angle is tabulated per class).
LOSS_CLASS_EDGES = (0.5, 0.9, 0.99)


def u_grid(n_lin: int, split: float, n_tail: int, tail_min: float) -> np.ndarray:
    """Probability nodes: uniform on [0, split), then geometric in 1-u down to
    ``tail_min`` (resolves the radiative / single-scattering tails), then 1."""
    return np.concatenate([np.linspace(0.0, split, n_lin, endpoint=False),
                           1.0 - np.geomspace(1.0 - split, tail_min, n_tail), [1.0]])


@dataclass(frozen=True)
class TableSettings:
    """Everything the tables depend on (hashed into the file name and metadata).

    Physics settings mirror `plugins.reference.transport.TransportSettings`: cuts
    v_cut and delta_cut [GeV], min_momentum [GeV/c], sub-step control of the
    reference (max steps [cm], max loss fraction).  Grids: momenta [GeV/c] and
    step lengths [cm], log-spaced; ``samples`` muons per bin.
    """

    materials: tuple[tuple[str, float], ...] = (("air", 1.0), ("tungsten", 0.94554), ("iron", 1.0),
                                                ("copper", 1.0), ("concrete", 1.0))
    v_cut: float = 0.01
    delta_cut: float = 0.01
    # Radiative losses above this fraction of E are left out of the tables and drawn by
    # the sampler from the cross sections (`catastrophic.catastrophic_arrays`); None: in.
    v_catastrophic: float | None = 0.05
    scattering_tail_factor: float = 2.5
    min_momentum: float = 0.5
    max_step_dense: float = 10.0
    max_step_air: float = 50.0
    max_loss_fraction: float = 0.05
    p_min: float = 0.5
    p_max: float = 1000.0
    p_per_decade: int = 12
    # 0.625 .. 160 cm doubling: a 20 cm node is exactly two 10 cm reference steps; the
    # longest serve the long steps inside the magnets, away from the iron's edges.
    l_min: float = 0.625
    l_max: float = 160.0
    samples: int = 200_000
    seed: int = 12345
    #: Where the steps come from: ``reference`` (`StepPhysics`, the reference transport's
    #: physics) or ``geant4`` (Geant4 steps, `shipfastsim.plugins.geant4_shield.step_tables`,
    #: at ``geant4_cut`` [cm]); part of the tables' name.
    physics: str = "reference"
    geant4_cut: float | None = None

    @property
    def p_nodes(self) -> np.ndarray:
        n = round(math.log10(self.p_max / self.p_min) * self.p_per_decade) + 1
        return np.geomspace(self.p_min, self.p_max, n)

    @property
    def l_nodes(self) -> np.ndarray:
        return np.geomspace(self.l_min, self.l_max, round(math.log2(self.l_max / self.l_min)) + 1)

    def geant4_version(self) -> str:
        """The Geant4 release of ``geant4`` tables (`GEANT4_RELEASE`)."""
        return GEANT4_RELEASE

    def digest(self) -> str:
        """Hash of the settings, the material properties, the format version, the
        probability grids' parameters and the revision of the reference physics the
        tables sample.  Only decimal inputs enter it, never computed floats: the grids
        that numpy computes from them (geomspace, SIMD code paths chosen per CPU) can
        differ in the last bit between machines, and the shipped tables must load on all."""
        props = {f"{n}:{s}": asdict(get_material(n)) for n, s in self.materials}
        settings = asdict(self)
        if self.physics == "reference":  # the settings of reference tables hash as before these fields existed
            del settings["physics"], settings["geant4_cut"]
        # Geant4 tables hold angles in units of `scattering_sigma`: its constant is part of their meaning.
        revision = (PHYSICS_REVISION if self.physics == "reference"
                    else f"geant4 {self.geant4_version()}, scattering unit {SCATTERING_CORE_FACTOR}")
        text = json.dumps({"format": FORMAT_VERSION, "physics": revision, "settings": settings,
                           "materials": props, "u": [GRID_LOSS, GRID_ANGLE, GRID_DISP]}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: The settings of the shipped tables: Geant4 steps at a 1 cm production cut (electron
#: threshold 13 MeV in iron: every loss above `v_catastrophic` of a muon of 0.5 GeV/c or
#: more is a discrete interaction, so none stays in the tables while the sampler adds it
#: again; at 10 cm, 209 MeV, some did), 12,000 muons per momentum node (each serving every
#: step length); docs/physics/geant4.md.
SHIPPED_SETTINGS = TableSettings(physics="geant4", geant4_cut=1.0, samples=12_000)

#: (n_lin, split, n_tail, tail_min) of the probability grids of loss, angle, displacement.
GRID_LOSS, GRID_ANGLE, GRID_DISP = (40, 0.8, 23, 1e-4), (24, 0.8, 15, 1e-3), (16, 0.8, 7, 1e-3)
U_LOSS, U_ANGLE, U_DISP = u_grid(*GRID_LOSS), u_grid(*GRID_ANGLE), u_grid(*GRID_DISP)


@dataclass
class StepTables:
    """Inverse-CDF tables; arrays indexed [material, p node, L node, ...] (see module doc)."""

    settings: TableSettings
    loss: np.ndarray   # (M, P, L, len(U_LOSS)) eps [GeV cm2/g]
    angle: np.ndarray  # (M, P, L, n_classes, len(U_ANGLE)) theta / sigma
    disp: np.ndarray   # (M, P, L, len(U_DISP)) residual displacement / (L sigma / sqrt 12)

    @property
    def digest(self) -> str:
        return self.settings.digest()

    def material_index(self, name: str, scale: float) -> int:
        """Row of (name, density scale) in the tables; KeyError if it was not built."""
        for i, (n, s) in enumerate(self.settings.materials):
            if n == name and abs(s - scale) < 1e-9:
                return i
        raise KeyError(f"material {name!r} x{scale:g} is not in the step tables (built for "
                       f"{list(self.settings.materials)}); run `shipfastsim tables build --geometry ...`")


def _sample_macro_steps(physics: StepPhysics, s: TableSettings, index: int, p0: torch.Tensor,
                        length: torch.Tensor, generator: torch.Generator
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Muons of momenta p0 [GeV/c] over ``length`` [cm] of one material, in the
    reference's sub-steps; returns dE [GeV] (all of E0 if stopped), theta (n, 2) [rad]
    and lateral displacement d (n, 2) [cm] at the end of the step."""
    mat, scale = physics.materials[index]
    rho = mat.density * scale
    n = p0.shape[0]
    e0 = torch.sqrt(p0**2 + MUON_MASS_GEV**2)
    E = e0.clone()
    theta, disp = torch.zeros(n, 2, dtype=torch.float64), torch.zeros(n, 2, dtype=torch.float64)
    done = torch.zeros(n, dtype=torch.float64)
    alive = torch.ones(n, dtype=torch.bool)
    max_step = s.max_step_dense if rho > 0.05 else s.max_step_air
    mats = torch.full((n,), index, dtype=torch.int64)
    while True:
        idx = torch.nonzero(alive & (done < length - 1e-9)).squeeze(1)
        if idx.numel() == 0:
            break
        e = E[idx]
        # The reference's step control: rough dE/dx, at most max_loss_fraction of E.
        limit = s.max_loss_fraction * e / (rho * rough_dedx(e))
        step = torch.minimum(torch.clamp(length[idx] - done[idx], max=max_step), limit).clamp_min(1e-6)
        p = torch.sqrt((e**2 - MUON_MASS_GEV**2).clamp_min(1e-12))
        out = physics.sample_step(mats[idx], p, step, generator)
        # Small-angle accumulation: earlier angles move the muon sideways over this sub-step.
        disp[idx] += theta[idx] * step[:, None] + torch.stack([out.dx, out.dy], 1)
        theta[idx] += torch.stack([out.theta_x, out.theta_y], 1)
        E[idx] = e - out.delta_e
        done[idx] += step
        # Losses are sampled at the sub-step's start energy and can exceed it: E < 0 is stopped too.
        alive[idx] = E[idx] >= math.sqrt(s.min_momentum**2 + MUON_MASS_GEV**2)
    return torch.where(alive, e0 - E, e0), theta, disp


def reduce_bin(de: np.ndarray, th: np.ndarray, d: np.ndarray, rho: float, x0: float, p0: float, length: float,
               moving: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile tables of one bin from its samples (see module docstring): losses dE
    [GeV], projected angles (n, 2) [rad] and displacements (n, 2) [cm] at the end of
    the step.  ``moving`` (None: all) marks the muons that still move there: only they
    enter the angle and displacement tables (the others are stopped)."""
    eps = de / (rho * length)
    sigma = float(scattering_sigma(p0, math.sqrt(p0**2 + MUON_MASS_GEV**2), length * rho / x0))
    a = np.hypot(th[:, 0], th[:, 1]) / sigma
    rank = np.empty(len(eps))
    rank[np.argsort(eps, kind="stable")] = (np.arange(len(eps)) + 0.5) / len(eps)
    cls = np.searchsorted(LOSS_CLASS_EDGES, rank, side="right")
    moving = np.ones(len(eps), dtype=bool) if moving is None else moving
    angle = np.stack([_quantiles(a[(cls == c) & moving], a[moving], U_ANGLE)
                      for c in range(len(LOSS_CLASS_EDGES) + 1)])
    r = d - 0.5 * length * th
    disp = _quantiles(np.hypot(r[:, 0], r[:, 1])[moving] / (length * sigma / math.sqrt(12.0)), np.zeros(1), U_DISP)
    all_energy = math.sqrt(p0**2 + MUON_MASS_GEV**2) / (rho * length)  # eps of a muon losing everything
    loss = match_sample_mean(np.quantile(eps, U_LOSS), float(eps.mean()), all_energy)
    return loss, angle, disp


def _quantiles(values: np.ndarray, fallback: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Quantiles of ``values`` at u (the top node moved by `match_second_moment`), or of
    ``fallback`` when no sample is left (a loss class whose muons all stopped: the
    sampler never continues them)."""
    for sample in (values, fallback):
        if len(sample):
            return match_second_moment(np.quantile(sample, u), u, float(np.mean(sample**2)))
    return np.zeros(len(u))


def match_second_moment(q: np.ndarray, u: np.ndarray, target: float) -> np.ndarray:
    """Lower the top node (u = 1, the sample's largest value) of a linearly interpolated
    inverse CDF, not below the node before it, so that the table's mean square equals
    ``target``, the samples' (it never raises it).  A single-scattering tail falls like
    a^-3: between the last two nodes most of its samples lie near the lower one, while
    linear interpolation spreads draws evenly up to the largest of ten thousand samples
    (tens of widths) and inflated the variance of Geant4's angle tables several times."""
    q = q.copy()
    du = np.diff(u)
    lo, hi = q[-2], q[-1]
    rest = float(np.sum(du[:-1] * (q[:-2] ** 2 + q[:-2] * q[1:-1] + q[1:-1] ** 2) / 3.0))
    need = 3.0 * (target - rest) / du[-1]  # lo^2 + lo h + h^2 must equal this
    disc = lo * lo - 4.0 * (lo * lo - need)
    h = 0.5 * (-lo + math.sqrt(disc)) if disc >= 0 else lo
    q[-1] = min(max(h, lo), hi)
    return q


def loss_table_mean(q: np.ndarray) -> float:
    """Mean of a loss inverse-CDF table as the sampler interpolates it: linearly in u
    below node ``GRID_LOSS[0]``, geometrically above (where both nodes are > 0)."""
    du = np.diff(U_LOSS)
    lo, hi = q[:-1], q[1:]
    linear = 0.5 * (lo + hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = np.where(np.abs(hi - lo) > 1e-12 * np.maximum(hi, 1e-300), (hi - lo) / np.log(hi / lo), lo)
    geometric = (np.arange(len(du)) >= GRID_LOSS[0]) & (lo > 0) & (hi > 0)
    return float(np.sum(np.where(geometric, log_mean, linear) * du))


def match_sample_mean(quantiles: np.ndarray, mean: float, cap: float) -> np.ndarray:
    """Move the top node (within [previous node, cap]) so that the table's mean
    (`loss_table_mean`) equals ``mean`` as nearly as that node allows."""
    q = quantiles.copy()
    lo, hi = q[-2], max(cap, q[-2])
    for _ in range(60):  # bisection: the mean increases with the top node
        q[-1] = 0.5 * (lo + hi)
        lo, hi = (q[-1], hi) if loss_table_mean(q) < mean else (lo, q[-1])
    q[-1] = 0.5 * (lo + hi)
    return q


def build_tables(settings: TableSettings = TableSettings(), progress=None, chunk: int = 600_000,
                 only: list[int] | None = None) -> StepTables:
    """Sample the reference physics in every bin, ``chunk`` muons per call (minutes
    on two cores); ``progress(message)`` is called after each material.  Each
    material has its own random stream (seed, material index), so ``only`` (material
    indices; the others stay zero) lets processes build materials in parallel and
    `merge_tables` gives the same tables as one sequential build."""
    s = settings
    physics = StepPhysics([(get_material(n), sc) for n, sc in s.materials], s.v_cut, s.delta_cut,
                          s.scattering_tail_factor, v_max=s.v_catastrophic)
    P, L = s.p_nodes, s.l_nodes
    shape = (len(s.materials), len(P), len(L))
    loss = np.zeros(shape + (len(U_LOSS),), np.float32)
    angle = np.zeros(shape + (len(LOSS_CLASS_EDGES) + 1, len(U_ANGLE)), np.float32)
    disp = np.zeros(shape + (len(U_DISP),), np.float32)
    bins = [(i, j) for i in range(len(P)) for j in range(len(L))]
    per_call = max(1, chunk // s.samples)
    for m, (name, scale) in enumerate(s.materials):
        if only is not None and m not in only:
            continue
        generator = torch.Generator().manual_seed(s.seed * 1000 + m)
        mat = get_material(name)
        for start in range(0, len(bins), per_call):
            group = bins[start:start + per_call]
            p0 = torch.tensor([P[i] for i, _ in group], dtype=torch.float64).repeat_interleave(s.samples)
            length = torch.tensor([L[j] for _, j in group], dtype=torch.float64).repeat_interleave(s.samples)
            de, th, d = (t.numpy() for t in _sample_macro_steps(physics, s, m, p0, length, generator))
            for k, (i, j) in enumerate(group):
                rows = slice(k * s.samples, (k + 1) * s.samples)
                loss[m, i, j], angle[m, i, j], disp[m, i, j] = reduce_bin(
                    de[rows], th[rows], d[rows], mat.density * scale, mat.radiation_length, float(P[i]), float(L[j]))
        if progress is not None:
            progress(f"{name} x{scale:g} done")
    return StepTables(s, loss, angle, disp)


def merge_tables(parts: list[StepTables], materials: list[list[int]]) -> StepTables:
    """Tables from parallel `build_tables(only=...)` runs."""
    s = parts[0].settings
    merged = StepTables(s, parts[0].loss.copy(), parts[0].angle.copy(), parts[0].disp.copy())
    for part, rows in zip(parts, materials, strict=True):
        assert part.settings == s, "parts built with different settings"
        for m in rows:
            merged.loss[m], merged.angle[m], merged.disp[m] = part.loss[m], part.angle[m], part.disp[m]
    return merged


def tables_filename(settings: TableSettings) -> str:
    """Versioned file name: ``step_tables_v<format>_<settings hash>.npz``."""
    return f"step_tables_v{FORMAT_VERSION}_{settings.digest()}.npz"


def save_tables(tables: StepTables, path: str | Path) -> Path:
    """Write an ``.npz`` (float16 values, settings as JSON metadata); a directory gets
    the versioned file name."""
    path = Path(path)
    if path.is_dir():
        path = path / tables_filename(tables.settings)
    meta = json.dumps({"format": FORMAT_VERSION, "digest": tables.digest, "settings": asdict(tables.settings)})
    # float16 is enough: every stored value is normalised to O(1e-3 .. 1e3).
    np.savez_compressed(path, meta=np.array(meta), loss=tables.loss.astype(np.float16),
                        angle=tables.angle.astype(np.float16), disp=tables.disp.astype(np.float16))
    return path


def load_tables(path: str | Path, expected: TableSettings | None = None) -> StepTables:
    """Read tables; refuse another format version, a corrupt hash or, when
    ``expected`` is given, tables built with other settings."""
    with np.load(Path(path), allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: step-table format {meta.get('format')}, this code reads {FORMAT_VERSION}; "
                             "rebuild with `shipfastsim tables build`")
        raw = meta["settings"]
        raw["materials"] = tuple((n, float(sc)) for n, sc in raw["materials"])
        settings = TableSettings(**raw)
        if settings.digest() != meta["digest"]:
            raise ValueError(f"{path}: settings hash {meta['digest']} does not match its settings "
                             f"({settings.digest()}); material data or grids changed, rebuild the tables")
        if expected is not None and expected.digest() != settings.digest():
            raise ValueError(f"{path}: tables built for settings {settings.digest()}, {expected.digest()} asked for")
        return StepTables(settings, data["loss"].astype(np.float32), data["angle"].astype(np.float32),
                          data["disp"].astype(np.float32))
