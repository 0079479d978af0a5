"""Core throughput: the FairShip writer against a bare uproot write, and the runner's overhead.

Run:  python benchmarks/bench_core.py [--muons 2000000] [--compression zlib]

1. Writer: the same 2M muons (shipped sample, phi-rotated) written by NtupleWriter
   (MuonBatch -> float32 ntuple branches -> uproot, atomic rename) and by a bare
   ``uproot.recreate(...).mktree(...).extend(...)`` of precomputed float32 arrays,
   both with the same compression and basket size.  Prints muons/s and the ratio.
2. Runner overhead: a pass-through chain (fairship-file -> an identity augmenter)
   and the default production's chain (fairship-file -> phi-rotation x100), each
   writing 2M muons through the full runner (chunking, seeding, staging, manifest,
   assembly into FairShip files): overhead = wall - stage time - writer time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import uproot

from shipfastsim import ComponentSpec, hookimpl
from shipfastsim.adapters.fairship import (
    BRANCH_OF_COLUMN,
    TREE_NAME,
    NtupleWriter,
    _compression,
    batch_to_branches,
    read_ntuple,
)
from shipfastsim.batch import MuonBatch
from shipfastsim.config import validate_document
from shipfastsim.data import TARGET_SAMPLE
from shipfastsim.registry import ComponentRegistry, get_plugin_manager
from shipfastsim.runner import run_production


class Identity:
    """An augmenter that returns its input: the cheapest possible stage."""

    @hookimpl
    def shipfastsim_declare_components(self):
        return [ComponentSpec("identity", "augmenter", "returns the batch unchanged")]

    @hookimpl
    def shipfastsim_augment_muons(self, stage, batch, context):
        return batch if stage.component == "identity" else None


def _best(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_writer(batch: MuonBatch, directory: Path, compression: str, chunk: int) -> tuple[float, float]:
    pieces = [batch.select(torch.arange(i, min(i + chunk, len(batch)))) for i in range(0, len(batch), chunk)]
    # The peer writes the same values as a user would hold them: native float32 arrays.
    arrays = [{k: v.astype(np.float32) for k, v in batch_to_branches(p).items()} for p in pieces]

    def bare():
        with uproot.recreate(directory / "bare.root", compression=_compression(compression, 1)) as file:
            tree = file.mktree(TREE_NAME, {b: np.float32 for b in BRANCH_OF_COLUMN.values()})
            for piece in arrays:
                tree.extend(piece)

    def ours():
        with NtupleWriter(directory / "ours.root", compression=compression, level=1) as writer:
            for piece in pieces:
                writer.write(piece)

    return _best(bare), _best(ours)


def bench_runner(directory: Path, events: int, chunk: int, compression: str, second_stage: dict) -> dict:
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Identity(), name="identity")
    registry = ComponentRegistry(manager)
    name = second_stage["augmenter"]
    document = {
        "version": 1,
        "run": {"events": events, "chunk_size": chunk, "seed": 1,
                "output": {"path": str(directory / name / "muons.root"), "compression": compression}},
        "stages": [{"generator": "fairship-file", "params": {"files": [str(TARGET_SAMPLE)], "wrap": True}},
                   second_stage],
    }
    config = validate_document(document, directory, registry)
    return run_production(config, progress=False, registry=registry)


def report_runner(title: str, summary: dict, writer_seconds: float) -> None:
    wall, stages = summary["wall_seconds"], summary["stage_seconds"]
    out = summary["muons_out"]
    overhead = wall - stages - writer_seconds
    print(f"runner, {title}: {summary['muons_generated']:,} muons in, {out:,} out")
    print(f"  wall {wall:.2f} s = stages {stages:.2f} s + writer {writer_seconds:.2f} s + overhead {overhead:.2f} s")
    print(f"  {out / wall:,.0f} muons/s written end to end; runner overhead {overhead / stages:.1%} of the "
          f"stages' time, {overhead / (stages + writer_seconds):.1%} of stages + writer, "
          f"{overhead / out * 1e9:.0f} ns per muon out")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--muons", type=int, default=2_000_000)
    parser.add_argument("--chunk", type=int, default=200_000)
    parser.add_argument("--compression", default="zstd", choices=("zlib", "lz4", "zstd", "none"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    sample, _ = read_ntuple(TARGET_SAMPLE)
    # Exactly the muons the pass-through run writes: the sample replayed in order.
    batch = sample.select(torch.arange(args.muons) % len(sample))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        bare, ours = bench_writer(batch, directory, args.compression, args.chunk)
        print(f"writer ({args.compression}, {args.muons:,} muons, {args.chunk:,} per basket):")
        print(f"  bare uproot write      {args.muons / bare:>14,.0f} muons/s")
        print(f"  shipfastsim writer     {args.muons / ours:>14,.0f} muons/s   ratio ours/bare = {bare / ours:.3f}")

        summary = bench_runner(directory, args.muons, args.chunk, args.compression, {"augmenter": "identity"})
        report_runner("pass-through chain (fairship-file -> identity)", summary, ours)
        # The default production's chain: the writer time scales with the muons written.
        summary = bench_runner(directory, args.muons // 100, args.chunk // 100, args.compression,
                               {"augmenter": "phi-rotation", "params": {"copies": 100}})
        report_runner("default chain (fairship-file -> phi-rotation x100)", summary, ours)


if __name__ == "__main__":
    main()
