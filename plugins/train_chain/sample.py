"""Step 1 of ``shipfastsim train chain``: the transported training sample.

``muons`` target muons of the ``generator`` (``flow-target`` by default: the generator of
the default production chain and of the nf-after-shield / nf-decay-vessel recipes,
`nf_after_shield.data`; ``gan-target`` is the mlp-filter recipe's, `mlp_filter.labels`),
each rotated ``copies`` times about the beam (``phi-rotation``), carried by the chosen
truth propagator (``fast-shield``, ``reference-shield`` or ``geant4-shield``, their
parameters' defaults with the chain's geometry) through the geometry to its ``shield_end``
plane and its decay-vessel entrance plane in one pass.  Per copy: the state at the target
(x, y, z [cm], px, py, pz [GeV/c], charge [e]), the generated muon's index (``event_id``:
the copies of one muon share it, and every split keeps them together), whether it
reaches the shield end and its state there, and its subset label (0, 1 = P1: enters the
vessel aperture, 2 = P2: its straight track also leaves through the vessel exit;
`DecayVessel.labels` of the state on the entrance plane, 0 when it does not get there).

Chunk k of ``chunk`` generated muons draws from seeds derived from (seed, k, stage)
only (`stage_seed`), and the chunks are joined in chunk order, so the sample is the same
whatever the number of dask workers (`shipfastsim.executors.map_chunks`).  From the
sample come the flows' `TrainingData` (rows at the shield end) and the filter's
`LabelledMuons` (every copy at the target), each with the sample's provenance record.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from shipfastsim.components import ChunkContext, Stage
from shipfastsim.errors import UsageError
from shipfastsim.executor_config import ExecutorConfig
from shipfastsim.executors import map_chunks
from shipfastsim.geometry import load_geometry
from shipfastsim.geometry.decay_vessel import DecayVessel
from shipfastsim.plugins.mlp_filter.labels import LabelledMuons
from shipfastsim.plugins.nf_after_shield.data import TrainingData
from shipfastsim.plugins.train_chain import GENERATORS, TRUTHS
from shipfastsim.runner import apply_stage, stage_seed
from shipfastsim.stage_params import make_stage

__all__ = ["SampleSettings", "ChainSample", "TransportTask", "make_sample", "load_sample",
           "sample_meta"]



@dataclass(frozen=True)
class SampleSettings:
    """What the sample is made of: ``geometry`` (YAML path), ``truth`` (a `TRUTHS` name),
    ``generator`` (a `GENERATORS` name), ``muons`` generated target muons, ``copies`` phi
    rotations of each, ``seed`` of the transport run, ``chunk`` generated muons per chunk,
    ``generator_weights`` (the generator's weights file; None: its bundled weights), e.g. a
    flow-target trained on a FairShip production with ``--weights-spill-pot``."""

    geometry: str
    truth: str
    generator: str = "flow-target"
    muons: int = 150_000
    copies: int = 10
    seed: int = 12
    chunk: int = 5000
    generator_weights: str | None = None

    def stages(self) -> tuple[Stage, Stage, Stage]:
        """The generator, phi-rotation and truth stages (validated parameters, defaults filled in)."""
        if self.truth not in TRUTHS or self.generator not in GENERATORS:
            raise UsageError(f"truth {self.truth!r}, generator {self.generator!r}: the chain takes a truth of "
                             f"{', '.join(TRUTHS)} and a generator of {', '.join(GENERATORS)}")
        weights = {} if self.generator_weights is None else {"weights": self.generator_weights}
        return (make_stage("generator", self.generator, weights),
                make_stage("augmenter", "phi-rotation", {"copies": self.copies}),
                make_stage("propagator", self.truth, {"geometry": self.geometry}, plane="shield_end"))

    def n_chunks(self) -> int:
        return -(-self.muons // self.chunk)


def _transport(stage: Stage):
    """The truth's transport object (built once per process), whose ``propagate`` records several planes."""
    if stage.component == "fast-shield":
        from shipfastsim.plugins.fast_shield import make_transport

        return stage.cached("chain-transport", lambda: make_transport(stage.params))
    if stage.component == "reference-shield":
        from shipfastsim.plugins.reference.plugin import transport_for

        return transport_for(stage)
    from shipfastsim.plugins.geant4_shield import make_transport as make_geant4

    return stage.cached("chain-transport", lambda: make_geant4(stage.params))


@dataclass
class TransportTask:
    """One chunk of the sample (picklable: it travels to the dask workers, which keep its
    first copy, so the transport is built once per worker)."""

    settings: SampleSettings
    stages: tuple[Stage, Stage, Stage]

    def __call__(self, chunk: int) -> dict[str, np.ndarray]:
        from shipfastsim.registry import get_registry

        torch.set_num_threads(1)  # one thread per worker process, as the production executor's
        s, registry, cpu = self.settings, get_registry(), torch.device("cpu")
        first = chunk * s.chunk
        n = min(s.chunk, s.muons - first)
        streams = [torch.Generator().manual_seed(stage_seed(s.seed, chunk, i)) for i in range(3)]
        muons = apply_stage(registry, self.stages[0], None, n, ChunkContext(chunk, first, streams[0], cpu))
        muons = apply_stage(registry, self.stages[1], muons, n, ChunkContext(chunk, first, streams[1], cpu))
        transport = _transport(self.stages[2])
        plane = transport.geometry.decay_vessel.plane
        pos, mom = torch.stack([muons.x, muons.y, muons.z], 1), torch.stack([muons.px, muons.py, muons.pz], 1)
        # Geant4 is seeded by an integer drawn from the chunk's stream, as its propagator stage does.
        randomness = streams[2] if s.truth != "geant4-shield" else int(torch.randint(2**62, (1,), generator=streams[2]))
        hits = transport.propagate(pos, mom, muons.charge, ["shield_end", plane], randomness)
        label = torch.zeros(len(muons), dtype=torch.int64)
        entered = hits.reached[plane]
        label[entered] = DecayVessel.from_geometry(transport.geometry).labels(*hits.state[plane][entered].T).cpu()
        # float32 on disk: ample for training (7 significant digits), and it halves the sample
        end = hits.state["shield_end"][:, [0, 1, 3, 4, 5]].float().nan_to_num(0.0)
        return {"target": torch.stack([muons.x, muons.y, muons.z, muons.px, muons.py, muons.pz, muons.charge],
                                      1).float().numpy(),
                "event_id": muons.event_id.numpy().astype(np.int64), "weight": muons.weight.double().numpy(),
                "at_end": hits.reached["shield_end"].numpy(), "end": end.numpy(),
                "label": label.numpy().astype(np.int8)}


@dataclass
class ChainSample:
    """Every transported copy (see the module docstring): ``target`` [n, 7] (float32), ``event_id``,
    ``weight`` (the batch weight over its mean: ones for the bundled generators), ``at_end``,
    ``end`` [n, 5] (float32: x, y [cm], px, py, pz [GeV/c] at the shield end; 0 where not reached),
    ``label``; ``meta``: settings, provenance record, counts and seconds."""

    target: np.ndarray
    event_id: np.ndarray
    weight: np.ndarray
    at_end: np.ndarray
    end: np.ndarray
    label: np.ndarray
    meta: dict

    def save(self, path: Path) -> Path:
        """Write the sample; the file appears whole or not at all (a partial write is a
        temporary file), so a chain resumed after a crash can trust it."""
        arrays = {k: getattr(self, k) for k in ("target", "event_id", "weight", "at_end", "end", "label")}
        path = Path(path)
        partial = path.with_name(path.stem + ".partial.npz")
        np.savez_compressed(partial, meta=np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8), **arrays)
        os.replace(partial, path)
        return path

    def training_data(self) -> TrainingData:
        """The flows' rows: every copy at the shield end (x, y, px, py, pz, charge), its label and muon."""
        rows = self.at_end
        state = np.concatenate([self.end[rows], self.target[rows, 6:7]], 1).astype(np.float64)
        weight = self.weight[rows] if np.ptp(self.weight) > 0 else None
        geometry = load_geometry(self.meta["settings"]["geometry"])
        return TrainingData(state, self.label[rows], len(self.label), self.meta["seconds"],
                            geometry.plane("shield_end").z, self.event_id[rows], self.meta["recipe"], weight,
                            json.dumps(self.meta["provenance"]))

    def labelled(self) -> LabelledMuons:
        """The filter's rows: every copy at the target with its labels shield_end, P1, P2."""
        labels = {"shield_end": self.at_end, "P1": self.label >= 1, "P2": self.label >= 2}
        settings = self.meta["settings"]
        meta = {"generator": settings["generator"], "generated": settings["muons"], "copies": settings["copies"],
                "seed": settings["seed"], "chunk": settings["chunk"], "propagator": settings["truth"],
                "geometry": Path(settings["geometry"]).name, "provenance": self.meta["provenance"]}
        # the sample's own arrays, not copies: a sample of 10^8 copies is several GB
        return LabelledMuons(self.target, self.event_id, labels, self.weight, meta)


def load_sample(path: str | Path) -> ChainSample:
    """Read a sample written by `ChainSample.save` (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in ("target", "event_id", "weight", "at_end", "end", "label")}
        return ChainSample(meta=json.loads(data["meta"].tobytes().decode()), **arrays)


def sample_meta(path: str | Path) -> dict:
    """Only the ``meta`` of a saved sample (settings, provenance, counts), without its arrays."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(data["meta"].tobytes().decode())


def _truth_record(stage: Stage) -> dict:
    """The provenance record of the truth stage (tables digest, or Geant4 version and cut)."""
    from shipfastsim.plugins.fast_shield import fast_shield_truth
    from shipfastsim.provenance import truth_record

    if stage.component == "fast-shield":
        return fast_shield_truth(stage.params)
    if stage.component == "geant4-shield":
        from shipfastsim.plugins.geant4_shield.runtime import geant4_version

        return truth_record("geant4-shield", geant4_version=geant4_version(),
                            production_cut_mm=10.0 * float(stage.params["production_cut"]))
    return truth_record(stage.component)


def make_sample(settings: SampleSettings, workers: int, progress: bool = False) -> ChainSample:
    """Transport the sample on a local dask cluster of ``workers`` single-threaded processes."""
    from shipfastsim.provenance import sample_record, target_record

    stages = settings.stages()
    geometry = load_geometry(settings.geometry)
    DecayVessel.from_geometry(geometry)  # a geometry without a decay vessel fails before any transport
    start, parts = time.perf_counter(), {}
    executor = ExecutorConfig(type="dask", workers=workers)
    for chunk, part in map_chunks(executor, TransportTask(settings, stages), list(range(settings.n_chunks()))):
        parts[chunk] = part
        if progress:
            print(f"  transport: chunk {len(parts)}/{settings.n_chunks()} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    # joined one array at a time, each chunk's part freed as it is used, so the peak memory is
    # the sample plus one array, not twice the sample
    order, joined = sorted(parts), {}
    for key in list(parts[0]):
        joined[key] = np.concatenate([parts[c].pop(key) for c in order])
    joined["weight"] = joined["weight"] / joined["weight"].mean()
    provenance = sample_record(settings.geometry, _truth_record(stages[2]),
                               target_record(settings.generator, stages[0].params.get("weights")), [settings.seed])
    weights = "bundled" if settings.generator_weights is None else Path(settings.generator_weights).name
    recipe = (f"{settings.generator} ({weights}) x {settings.copies} phi-rotation -> {settings.truth} "
              f"({Path(settings.geometry).name}) to shield_end and {geometry.decay_vessel.plane}; labels by "
              f"DecayVessel.labels; seed {settings.seed}")
    meta = {"settings": asdict(settings), "provenance": provenance, "recipe": recipe,
            "seconds": time.perf_counter() - start, "workers": workers,
            "counts": {"copies": int(len(joined["label"])), "shield_end": int(joined["at_end"].sum()),
                       "P1": int((joined["label"] >= 1).sum()), "P2": int((joined["label"] >= 2).sum())}}
    return ChainSample(meta=meta, **joined)
