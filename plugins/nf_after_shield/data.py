"""Training data of the flow: transported muons at the end of the shield with their subset labels.

Recipe (`make_training_data`), the default production chain (configs/default.yaml):
``n_target`` muons from the bundled ``flow-target`` generator, ``copies`` (10) copies of
each rotated about the beam axis by independent uniform angles (``phi-rotation``),
transported by ``fast-shield`` (committed tables, the default geometry) through the
``shield_end`` and ``decay_vessel`` recording planes in one pass.  The stages are called
through their plugin hooks, as a production run calls them.  Every muon that reaches
``shield_end`` is a row (x, y, px, py, pz, charge at the shield end) with its target
muon's index (``event_id``: the copies of one target muon share it); its label is
`DecayVessel.labels` of its state at the decay-vessel entrance (0 when it does not get
there), i.e. the transport's state at the entrance and then the straight track to the
vessel exit.  Chunks of ``chunk`` target muons are seeded by (seed, chunk index) alone,
so the rows do not depend on ``workers`` (processes of one torch thread each).  Rows
are written to an ``.npz`` (no pickle) with the counts.

The train / validation / holdout split (`split_indices`) is by target muon, so that the
phi-rotated copies of one muon never sit on both sides of it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["COLUMNS", "COPIES", "SPLIT_FRACTIONS", "TrainingData", "make_training_data", "load_training_data",
           "split_indices", "save_holdout"]

COLUMNS = ("x", "y", "px", "py", "pz", "charge", "label")
#: phi-rotated copies per target muon (configs/default.yaml).
COPIES = 10
#: Fractions of the target muons in the training and validation splits; the rest is the
#: holdout: 15 % of the data, so that it holds about two thousand P1 muons.
SPLIT_FRACTIONS = (0.80, 0.05)


@dataclass
class TrainingData:
    """Rows at the shield end: ``state`` [n, 6] (x, y [cm], px, py, pz [GeV/c], charge [e]),
    ``label`` [n] (0, 1, 2: deepest subset) and ``event_id`` [n] (index of the target muon),
    with how they were made (``n_target``: transported muons, copies included)."""

    state: np.ndarray
    label: np.ndarray
    n_target: int
    seconds: float
    z_plane: float
    event_id: np.ndarray | None = None
    recipe: str = ""
    weight: np.ndarray | None = None  # per row (a weighted production's w); None: every row weighs the same
    provenance: str = ""  # JSON `shipfastsim.provenance.sample_record` ("" for samples made before it)

    def groups(self) -> np.ndarray:
        """Target-muon index of each row (each row its own when not recorded)."""
        return np.arange(len(self.label)) if self.event_id is None else self.event_id

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        weight = {} if self.weight is None else {"weight": self.weight}
        np.savez_compressed(path, state=self.state, label=self.label, n_target=self.n_target, seconds=self.seconds,
                            z_plane=self.z_plane, event_id=self.groups(), recipe=self.recipe,
                            provenance=self.provenance, **weight)
        return path


def load_training_data(path: str | Path) -> TrainingData:
    with np.load(path, allow_pickle=False) as f:
        event_id = f["event_id"] if "event_id" in f.files else None
        recipe = str(f["recipe"]) if "recipe" in f.files else ""
        weight = f["weight"] if "weight" in f.files else None
        provenance = str(f["provenance"]) if "provenance" in f.files else ""
        return TrainingData(f["state"], f["label"], int(f["n_target"]), float(f["seconds"]), float(f["z_plane"]),
                            event_id, recipe, weight, provenance)


_WORKER: dict = {}


def _start_worker() -> None:
    """Per process: one torch and one transport-kernel thread, the hooks' stages and the transport."""
    from shipfastsim.transport.jit import numba

    torch.set_num_threads(1)
    numba().set_num_threads(1)  # the pool's processes are the parallelism
    from shipfastsim.components import Stage
    from shipfastsim.geometry.decay_vessel import DecayVessel
    from shipfastsim.plugins.fast_shield import make_transport
    from shipfastsim.plugins.flow_target import COMPONENT as FLOW
    from shipfastsim.plugins.phi_rotation import COMPONENT as PHI
    from shipfastsim.registry import get_registry

    cpu = torch.device("cpu")
    transport = make_transport({})
    _WORKER.update(hook=get_registry().hook, transport=transport, vessel=DecayVessel.from_geometry(transport.geometry),
                   generator=Stage(kind="generator", component="flow-target", params=FLOW.defaults(), device=cpu),
                   phi=Stage(kind="augmenter", component="phi-rotation", params=PHI.defaults() | {"copies": COPIES},
                             device=cpu))


def _chunk(seed: int, index: int, first: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (state, label, event_id) of target muons first .. first + n - 1."""
    from shipfastsim.components import ChunkContext

    w = _WORKER
    seed_state = np.random.SeedSequence([seed, index]).generate_state(2)
    generator = torch.Generator().manual_seed(int(seed_state[0]) << 32 | int(seed_state[1]))
    context = ChunkContext(chunk_index=index, first_muon=first, generator=generator, device=torch.device("cpu"))
    batch = w["hook"].shipfastsim_generate_muons(stage=w["generator"], n_muons=n, context=context)
    batch = w["hook"].shipfastsim_augment_muons(stage=w["phi"], batch=batch, context=context)
    pos = torch.stack([batch.x, batch.y, batch.z], 1)
    mom = torch.stack([batch.px, batch.py, batch.pz], 1)
    hits = w["transport"].propagate(pos, mom, batch.charge, ["shield_end", "decay_vessel"], generator)
    end, entrance = hits.reached["shield_end"], hits.reached["decay_vessel"]
    label = torch.zeros(len(batch), dtype=torch.int64)
    label[entrance] = w["vessel"].labels(*hits.state["decay_vessel"][entrance].T)
    s = hits.state["shield_end"][end]
    state = torch.cat([s[:, 0:2], s[:, 3:6], batch.charge[end].double()[:, None]], 1).numpy()
    return state, label[end].numpy().astype(np.int8), batch.event_id[end].numpy()


def make_training_data(n_target: int, seed: int = 12, chunk: int = 20_000, workers: int = 2,
                       progress: bool = False) -> TrainingData:
    """Transport ``n_target`` flow-target muons x `COPIES` phi rotations with fast-shield (module docstring)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    jobs = [(seed, k, first, min(chunk, n_target - first)) for k, first in enumerate(range(0, n_target, chunk))]
    start, parts = time.perf_counter(), []
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                           initializer=_start_worker))
            results = pool.map(_chunk, *zip(*jobs, strict=True))
        else:  # in this process (its thread counts are set to 1 as in a worker)
            _start_worker()
            results = (_chunk(*job) for job in jobs)
        for k, part in enumerate(results):
            parts.append(part)
            if progress:
                done = sum(len(p[1]) for p in parts)
                print(f"  chunk {k + 1}/{len(jobs)}: {done} muons at the shield end, "
                      f"{sum(int((p[1] >= 1).sum()) for p in parts)} P1, {time.perf_counter() - start:.0f} s",
                      flush=True)
    from shipfastsim.geometry import load_geometry
    from shipfastsim.plugins.fast_shield import DEFAULT_GEOMETRY, fast_shield_truth
    from shipfastsim.plugins.flow_target import BUNDLED_WEIGHTS as FLOW_WEIGHTS
    from shipfastsim.provenance import sample_record, target_record

    # what _start_worker transports with: fast-shield's defaults and the bundled flow-target
    provenance = sample_record(DEFAULT_GEOMETRY, fast_shield_truth({}), target_record("flow-target", FLOW_WEIGHTS),
                               [seed])
    recipe = (f"flow-target (bundled) x {COPIES} phi-rotation -> fast-shield (committed tables, "
              f"{DEFAULT_GEOMETRY.name}) to shield_end and decay_vessel; labels by DecayVessel.labels; seed {seed}")
    return TrainingData(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        n_target * COPIES, time.perf_counter() - start,
                        load_geometry(DEFAULT_GEOMETRY).plane("shield_end").z,
                        np.concatenate([p[2] for p in parts]), recipe, provenance=json.dumps(provenance))


def split_indices(groups: np.ndarray | int, seed: int = 5,
                  fractions: tuple[float, float] = SPLIT_FRACTIONS) -> dict[str, np.ndarray]:
    """Fixed random train / validation / holdout row indices (holdout: the rest), drawn per
    group (``groups``: target-muon index of each row, or a row count: one group per row)."""
    groups = np.arange(groups) if isinstance(groups, int | np.integer) else np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    rank = np.empty(len(unique), np.int64)
    rank[np.random.default_rng(seed).permutation(len(unique))] = np.arange(len(unique))
    a, b = int(fractions[0] * len(unique)), int((fractions[0] + fractions[1]) * len(unique))
    position = rank[inverse]
    return {"train": np.flatnonzero(position < a), "validation": np.flatnonzero((position >= a) & (position < b)),
            "holdout": np.flatnonzero(position >= b)}


def save_holdout(data: TrainingData, path: str | Path, n_p0: int = 60_000, seed: int = 6) -> Path:
    """Write the shipped test sample: ``n_p0`` random holdout rows (``random`` = True: an
    unbiased P0 sample) plus every other holdout row of P1 and P2 (``random`` = False), so
    that the subsets keep all their holdout statistics.  float32 state, int8 labels, the
    rows' target-muon index (``event_id``)."""
    holdout = split_indices(data.groups())["holdout"]
    random_rows = np.random.default_rng(seed).permutation(holdout)[:n_p0]
    extra = np.setdiff1d(holdout[data.label[holdout] >= 1], random_rows)
    rows = np.concatenate([random_rows, extra])
    path = Path(path)
    np.savez_compressed(path, state=data.state[rows].astype(np.float32), label=data.label[rows],
                        random=np.arange(len(rows)) < len(random_rows), z_plane=data.z_plane,
                        event_id=data.groups()[rows], holdout_rows=len(holdout))
    return path
