"""Training data of the flow: transported muons at the end of the shield with their subset labels.

Recipe (one function, `make_training_data`): ``n_target`` muons from the bundled
``gan-target`` GAN, each rotated about the beam axis by an independent uniform phi
(``phi-rotation``'s `rotate_about_beam`; the GAN is phi-symmetric up to its own
error, the rotation removes that error), transported by ``fast-shield`` through the
``shield_end`` and ``decay_vessel`` recording planes in one pass.  Every muon that
reaches ``shield_end`` is a training row (x, y, px, py, pz, charge at the shield end);
its label is `DecayVessel.labels` of its state at the decay-vessel entrance (0 when it
does not get there), i.e. the transport's state at the entrance and then the straight
track to the vessel exit.  Rows are written to an ``.npz`` (no pickle) with the counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["COLUMNS", "TrainingData", "make_training_data", "load_training_data", "split_indices", "save_holdout"]

COLUMNS = ("x", "y", "px", "py", "pz", "charge", "label")


@dataclass
class TrainingData:
    """Rows at the shield end: ``state`` [n, 6] (x, y [cm], px, py, pz [GeV/c], charge [e])
    and ``label`` [n] (0, 1, 2: deepest subset), with how they were made."""

    state: np.ndarray
    label: np.ndarray
    n_target: int
    seconds: float
    z_plane: float

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, state=self.state, label=self.label, n_target=self.n_target,
                            seconds=self.seconds, z_plane=self.z_plane)
        return path


def load_training_data(path: str | Path) -> TrainingData:
    with np.load(path, allow_pickle=False) as f:
        return TrainingData(f["state"], f["label"], int(f["n_target"]), float(f["seconds"]), float(f["z_plane"]))


def make_training_data(n_target: int, seed: int = 12, chunk: int = 50_000, progress: bool = False) -> TrainingData:
    """Transport ``n_target`` phi-rotated gan-target muons with fast-shield (see module docstring)."""
    from shipfastsim.geometry.decay_vessel import DecayVessel
    from shipfastsim.plugins.fast_shield import make_transport
    from shipfastsim.plugins.gan_target import BUNDLED_WEIGHTS, draw_noise, muons_from_state
    from shipfastsim.plugins.gan_target.model import load_generator
    from shipfastsim.plugins.phi_rotation import rotate_about_beam

    generator = torch.Generator().manual_seed(seed)
    gan = load_generator(BUNDLED_WEIGHTS)
    transport = make_transport({})
    vessel = DecayVessel.from_geometry(transport.geometry)
    z_plane = transport.geometry.plane("shield_end").z
    states, labels, start = [], [], time.perf_counter()
    for first in range(0, n_target, chunk):
        n = min(chunk, n_target - first)
        with torch.inference_mode():
            batch = muons_from_state(gan.generate(draw_noise(n, gan.config.noise_dim, generator)), first,
                                     torch.device("cpu"))
        batch = rotate_about_beam(batch, torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi)
        pos = torch.stack([batch.x, batch.y, batch.z], 1)
        mom = torch.stack([batch.px, batch.py, batch.pz], 1)
        hits = transport.propagate(pos, mom, batch.charge, ["shield_end", "decay_vessel"], generator)
        end, entrance = hits.reached["shield_end"], hits.reached["decay_vessel"]
        label = torch.zeros(n, dtype=torch.int64)
        at = hits.state["decay_vessel"][entrance]
        label[entrance] = vessel.labels(*at.T)
        s = hits.state["shield_end"][end]
        states.append(torch.cat([s[:, 0:2], s[:, 3:6], batch.charge[end].double()[:, None]], 1).numpy())
        labels.append(label[end].numpy())
        if progress:
            print(f"  transported {first + n}/{n_target} target muons", flush=True)
    return TrainingData(np.concatenate(states), np.concatenate(labels).astype(np.int8), n_target,
                        time.perf_counter() - start, z_plane)


def split_indices(n: int, seed: int = 5, fractions: tuple[float, float] = (0.8, 0.1)) -> dict[str, np.ndarray]:
    """Fixed random train / validation / holdout row indices (holdout: the rest)."""
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
    return {"train": order[:a], "validation": order[a:b], "holdout": order[b:]}



def save_holdout(data: TrainingData, path: str | Path, n_p0: int = 30_000, seed: int = 6) -> Path:
    """Write the shipped test sample: ``n_p0`` random holdout rows (``random`` = True: an
    unbiased P0 sample) plus every other holdout row of P1 and P2 (``random`` = False), so
    that the subsets keep all their holdout statistics.  float32 state, int8 labels."""
    holdout = split_indices(len(data.label))["holdout"]
    random_rows = np.random.default_rng(seed).permutation(holdout)[:n_p0]
    extra = np.setdiff1d(holdout[data.label[holdout] >= 1], random_rows)
    rows = np.concatenate([random_rows, extra])
    path = Path(path)
    np.savez_compressed(path, state=data.state[rows].astype(np.float32), label=data.label[rows],
                        random=np.arange(len(rows)) < len(random_rows), z_plane=data.z_plane)
    return path
