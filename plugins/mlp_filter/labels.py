"""Labelled target muons for the filter: which ones reach the shield end, P1 and P2.

`label_target_muons` makes the training sample the way a production would:
``gan-target`` muons, each rotated ``copies`` times about the beam (``phi-rotation``;
the shield is not azimuthally symmetric, so every copy is a new input), then carried
by ``fast-shield`` through the shield to the ``shield_end`` and ``decay_vessel``
recording planes.  Labels per muon:

* ``shield_end``: it reaches the end of the shield;
* ``P1``: it crosses the decay-vessel entrance inside its aperture;
* ``P2``: P1 and its straight track stays inside the vessel to the downstream end,

the last two from `shipfastsim.geometry.decay_vessel` applied to the state the
transport records on the entrance plane.  Chunk k of the GAN draws from the seed
``(seed, k)`` only, so a sample is reproducible and a larger one extends a smaller.

`LabelledMuons` is stored as a plain ``.npz`` (no pickles); ``group`` is the index of
the GAN muon a copy comes from, so that splits keep copies together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["LABELS", "LabelledMuons", "label_states", "label_frequency", "label_target_muons", "stratified_subsample",
           "concat_labelled", "save_labelled", "load_labelled"]

#: Label names, from the loosest to the tightest.
LABELS = ("shield_end", "P1", "P2")


@dataclass
class LabelledMuons:
    """Target muons with their labels.

    Attributes:
        state: ``[n, 7]`` float32: x, y, z [cm], px, py, pz [GeV/c], charge [e] at the target.
        group: int64 index of the generated (GAN) muon of each row.
        labels: label name (`LABELS`) -> bool array.
        weight: float64 sampling weight (1, or 1/f for rows kept with probability f).
        meta: how the sample was made (JSON-serialisable).
    """

    state: np.ndarray
    group: np.ndarray
    labels: dict[str, np.ndarray]
    weight: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.state)

    def select(self, index: np.ndarray) -> LabelledMuons:
        """Rows picked by a boolean mask or an index array (weights unchanged)."""
        return LabelledMuons(self.state[index], self.group[index], {k: v[index] for k, v in self.labels.items()},
                             self.weight[index], dict(self.meta))


def label_states(transport, state, generator) -> dict[str, np.ndarray]:
    """Labels (`LABELS` -> bool array) of target muons ``[n, 7]`` (x, y, z, px, py, pz,
    charge; torch) carried by a fast-shield ``transport`` drawing from ``generator``."""
    import torch

    from shipfastsim.geometry.decay_vessel import DecayVessel

    vessel = DecayVessel.from_geometry(transport.geometry)
    plane = vessel_plane(transport)
    hits = transport.propagate(state[:, 0:3], state[:, 3:6], state[:, 6], ["shield_end", plane], generator)
    reached = hits.reached[plane]
    subset = torch.zeros(len(state), dtype=torch.int64)
    subset[reached] = vessel.labels(*hits.state[plane][reached].unbind(1)).cpu()
    return {"shield_end": hits.reached["shield_end"].cpu().numpy(), "P1": (subset >= 1).numpy(),
            "P2": (subset >= 2).numpy()}


def label_frequency(transport, state, repeats: int, generator, label: str = "P1") -> np.ndarray:
    """Per muon of ``state`` (torch ``[n, 7]``): the fraction of ``repeats`` independent
    transports that give ``label``, an unbiased estimate of its probability p(x)."""
    hits = label_states(transport, state.repeat(repeats, 1), generator)[label]
    return hits.reshape(repeats, len(state)).mean(0)


def vessel_plane(transport) -> str:
    """Name of the recording plane that is the decay-vessel entrance of a transport's geometry."""
    section = transport.geometry.decay_vessel
    if section is None:
        raise ValueError(f"geometry {transport.geometry.name!r} has no decay_vessel section")
    return section.plane


def label_target_muons(n_generated: int, copies: int = 10, seed: int = 1, chunk: int = 5000, first_muon: int = 0,
                       shield_params: dict | None = None, gan_params: dict | None = None,
                       progress: bool = False, generator: str = "gan-target") -> LabelledMuons:
    """``n_generated`` muons of ``generator`` (gan-target unless named) x ``copies`` phi rotations,
    labelled by fast-shield.

    Args:
        n_generated: GAN muons (the sample has ``n_generated * copies`` rows).
        copies: phi-rotated copies of each.
        seed: base seed; chunk k of ``chunk`` GAN muons uses seeds derived from (seed, k).
        first_muon: index of the first GAN muon (a multiple of ``chunk``), so that samples
            made in parts (``first_muon`` = 0, n, 2n, ...) together equal one large sample.
        shield_params: ``fast-shield`` parameters (geometry, tables, ...; defaults otherwise).
        gan_params: the generator's parameters (weights, ...).
        generator: the generator component (a target generator, or ``fairship-file`` for a truth sample).
    """
    import torch
    from tqdm.auto import tqdm

    from shipfastsim.components import ChunkContext
    from shipfastsim.config import make_stage
    from shipfastsim.plugins.fast_shield import COMPONENT as SHIELD
    from shipfastsim.plugins.fast_shield import fast_shield_truth, make_transport
    from shipfastsim.provenance import sample_record, target_record
    from shipfastsim.registry import get_registry
    from shipfastsim.runner import apply_stage, stage_seed

    registry = get_registry()
    shield = SHIELD.defaults() | (shield_params or {})
    transport = make_transport(shield)
    generator_stage = make_stage("generator", generator, gan_params or {})
    rotation = make_stage("augmenter", "phi-rotation", {"copies": copies})
    states, groups, labels = [], [], {name: [] for name in LABELS}
    if first_muon % chunk:
        raise ValueError(f"first_muon {first_muon} is not a multiple of the chunk size {chunk}")
    end = first_muon + n_generated
    for k in tqdm(range(first_muon, end, chunk), disable=not progress, desc="labelling", unit=" chunks"):
        n = min(chunk, end - k)
        index = k // chunk
        streams = [torch.Generator().manual_seed(stage_seed(seed, index, i)) for i in range(3)]
        muons = apply_stage(registry, generator_stage, None, n, ChunkContext(index, k, streams[0], transport.device))
        muons = apply_stage(registry, rotation, muons, n, ChunkContext(index, k, streams[1], transport.device))
        state = torch.stack([muons.x, muons.y, muons.z, muons.px, muons.py, muons.pz, muons.charge], 1)
        for name, values in label_states(transport, state, streams[2]).items():
            labels[name].append(values)
        states.append(state.float().numpy())
        groups.append(muons.event_id.numpy())
    meta = {"generator": generator, "generated": n_generated, "first_muon": first_muon, "copies": copies,
            "seed": seed, "chunk": chunk,
            "propagator": "fast-shield", "geometry": Path(shield["geometry"]).name,
            "tables": Path(shield["tables"]).name,
            "provenance": sample_record(shield["geometry"], fast_shield_truth(shield),
                                        target_record(generator, generator_stage.params.get("weights")), [seed])}
    return LabelledMuons(np.concatenate(states), np.concatenate(groups).astype(np.int64),
                         {name: np.concatenate(v) for name, v in labels.items()},
                         np.ones(sum(len(s) for s in states)), meta)


def stratified_subsample(sample: LabelledMuons, probability: np.ndarray, seed: int) -> LabelledMuons:
    """Each row kept with its ``probability`` (in (0, 1]) and its weight divided by it.

    Weighted totals of the result are unbiased estimates of those of ``sample``; used
    to ship a small held-out set that still holds every dangerous muon (probability 1).
    """
    probability = np.asarray(probability, dtype=np.float64)
    if np.any((probability <= 0) | (probability > 1)):
        raise ValueError("keep probabilities must be in (0, 1]")
    keep = np.random.default_rng(seed).random(len(sample)) < probability
    out = sample.select(keep)
    out.weight = out.weight / probability[keep]
    out.meta |= {"subsample": {"rows": int(keep.sum()), "of": len(sample), "seed": seed,
                               "kept_surely": int((probability == 1).sum())}}
    return out


def concat_labelled(samples: list[LabelledMuons]) -> LabelledMuons:
    """Samples made in parts (`label_target_muons` with ``first_muon``) as one."""
    from shipfastsim.provenance import merge_samples

    meta = dict(samples[0].meta) | {"generated": sum(s.meta.get("generated", 0) for s in samples),
                                    "parts": [s.meta for s in samples],
                                    "provenance": merge_samples([s.meta.get("provenance") for s in samples])}
    return LabelledMuons(np.concatenate([s.state for s in samples]), np.concatenate([s.group for s in samples]),
                         {k: np.concatenate([s.labels[k] for s in samples]) for k in samples[0].labels},
                         np.concatenate([s.weight for s in samples]), meta)


def save_labelled(sample: LabelledMuons, path: str | Path) -> Path:
    """Write a sample as a compressed ``.npz`` (labels packed as uint8, metadata as JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"state": sample.state.astype(np.float32, copy=False), "group": sample.group, "weight": sample.weight,
              "meta": np.frombuffer(json.dumps(sample.meta).encode(), dtype=np.uint8)}
    arrays |= {f"label_{k}": v.astype(np.uint8) for k, v in sample.labels.items()}
    np.savez_compressed(path, **arrays)
    return path


def load_labelled(path: str | Path) -> LabelledMuons:
    """Read a sample written by `save_labelled` (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as data:
        labels = {key[len("label_"):]: data[key].astype(bool) for key in data.files if key.startswith("label_")}
        return LabelledMuons(data["state"], data["group"], labels, data["weight"],
                             json.loads(data["meta"].tobytes().decode()))
