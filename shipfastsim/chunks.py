"""One chunk of a run: its seeds, its stages, its staged output.

Chunk k holds the generated muons ``[k * chunk_size, (k+1) * chunk_size)``; every
stage of chunk k draws from a torch generator seeded from ``(seed, k, stage index)``
only, so the output does not depend on how chunks are spread over workers, on how
many are in flight, or on whether the run was interrupted and resumed.  A `ChunkPlan`
is everything a worker needs (it is pickled to dask workers); `run_chunk` makes one
chunk and stages it.  The executors call it; the runner plans it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipfastsim.adapters.fairship import batch_to_branches
from shipfastsim.batch import MuonBatch
from shipfastsim.components import ChunkContext, Stage
from shipfastsim.output import chunk_row_order, stage_chunk
from shipfastsim.registry import ComponentRegistry, get_registry
from shipfastsim.units import NTUPLE_Z_SHIFT, FairShipFrame

__all__ = ["ChunkPlan", "run_chunk", "stage_seed", "apply_stage"]


def stage_seed(seed: int, chunk: int, stage_index: int) -> int:
    """A 63-bit seed for one stage of one chunk, independent of anything else."""
    state = np.random.SeedSequence([seed, chunk, stage_index]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


@dataclass(frozen=True)
class ChunkPlan:
    """Everything a worker needs to make one chunk (picklable)."""

    stages: tuple[Stage, ...]
    seed: int
    events: int
    chunk_size: int
    device: str
    staging_dir: str
    target_z0: float
    #: generator weights are multiplied by it: per-spill normalisation (`shipfastsim.normalisation`).
    weight_factor: float = 1.0
    ntuple_z_offset: float = NTUPLE_Z_SHIFT

    def bounds(self, chunk: int) -> tuple[int, int]:
        first = chunk * self.chunk_size
        return first, min(self.chunk_size, self.events - first)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def apply_stage(registry: ComponentRegistry, stage: Stage, batch: MuonBatch | None, n_muons: int,
                context: ChunkContext) -> MuonBatch:
    """Call the hook of one stage, on the plugin that declared its component only."""
    hook = registry.stage_hook(stage.kind, stage.component)
    if stage.kind == "generator":
        result = hook(stage=stage, n_muons=n_muons, context=context)
    elif stage.kind == "propagator":
        result = hook(stage=stage, batch=batch, plane=stage.params["plane"], context=context)
    elif stage.kind == "augmenter":
        result = hook(stage=stage, batch=batch, context=context)
    else:
        decision = hook(stage=stage, batch=batch, context=context)
        result = None
        if decision is not None:
            kept = batch if decision.weight is None else batch.replace(weight=decision.weight.to(torch.float64))
            result = kept.select(decision.keep)
    if result is None:
        owner = registry.get(stage.kind, stage.component)
        raise RuntimeError(f"plugin {owner.plugin_name if owner else '?'!r} declared {stage.kind} "
                           f"{stage.component!r} but returned nothing for it")
    if stage.kind == "generator" and len(result) != n_muons:
        raise RuntimeError(f"generator {stage.component!r} returned {len(result)} muons, {n_muons} asked for")
    return result


def run_chunk(plan: ChunkPlan, chunk: int, registry: ComponentRegistry | None = None) -> dict[str, Any]:
    """Make chunk ``chunk``, stage it on disk, and return its statistics."""
    registry = registry or get_registry()
    device = torch.device(plan.device)
    first, n_muons = plan.bounds(chunk)
    counters: Counter[str] = Counter()
    stage_stats = []
    batch: MuonBatch | None = None
    for stage in plan.stages:
        generator = torch.Generator(device=device).manual_seed(stage_seed(plan.seed, chunk, stage.index))
        context = ChunkContext(chunk, first, generator, device, counters)
        n_in = n_muons if batch is None else len(batch)
        weight_in = float(n_muons) if batch is None else float(batch.weight.sum())
        start = time.perf_counter()
        batch = apply_stage(registry, stage, batch, n_muons, context)
        if stage.kind == "generator" and plan.weight_factor != 1.0:
            batch = batch.replace(weight=batch.weight * plan.weight_factor)
        _synchronize(device)
        seconds = time.perf_counter() - start
        stage_stats.append({"muons_in": n_in, "muons_out": len(batch), "weight_in": weight_in,
                            "weight_out": float(batch.weight.sum()), "seconds": seconds})
    assert batch is not None
    start = time.perf_counter()
    batch = batch.select(torch.from_numpy(chunk_row_order(len(batch), plan.seed, chunk)).to(batch.device))
    branches = batch_to_branches(batch, FairShipFrame(plan.target_z0, plan.ntuple_z_offset))
    stats = {"chunks": 1, "muons_out": len(batch), "stages": stage_stats, "counters": dict(counters),
             "stage_seconds": sum(s["seconds"] for s in stage_stats)}
    # Staging time is part of the chunk's cost, measured up to the atomic rename.
    stats["staging_seconds"] = time.perf_counter() - start
    stage_chunk(Path(plan.staging_dir), chunk, branches, stats)
    return stats
