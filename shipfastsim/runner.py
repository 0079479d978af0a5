"""The production runner: a validated config to files, a manifest and a summary.

It plans the chunks (`shipfastsim.chunks`), hands them to the executor
(`shipfastsim.executors`), assembles what they staged in chunk order
(`shipfastsim.output`) and writes the summary (`shipfastsim.summary`); on a failure it
keeps what is done, or leaves the output folder as it found it.  Above it is only the
command line.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from shipfastsim.chunks import ChunkPlan, apply_stage, run_chunk, stage_seed
from shipfastsim.config import RunConfig
from shipfastsim.executors import run_chunks
from shipfastsim.normalisation import resolve_normalisation
from shipfastsim.output import OutputStore, staging_dir_for
from shipfastsim.registry import ComponentRegistry, get_registry
from shipfastsim.summary import build_summary, file_metadata, write_summary

# A chunk's own machinery lives in `shipfastsim.chunks`; these names stay importable from
# here, where the plugins' training code and the benchmarks have always found them.
__all__ = ["run_production", "ChunkPlan", "run_chunk", "stage_seed", "apply_stage"]


def _after_failure(store: OutputStore, error: BaseException, fresh: bool, directory_existed: bool) -> None:
    """Leave the output folder as it was found when a fresh run failed before staging any
    chunk; otherwise keep what is done and say exactly how to continue (as a note on
    ``error``, which the command line prints)."""
    if fresh and not store.staged_rows and not store.manifest.get("files"):
        for path in list(store.staging.glob("*")) if store.staging.exists() else []:
            path.unlink()
        if store.staging.exists():
            store.staging.rmdir()
        store.manifest_path.unlink(missing_ok=True)
        if not directory_existed and store.directory.exists() and not any(store.directory.iterdir()):
            store.directory.rmdir()
        return
    kept = len(store.staged_rows) + store.manifest.get("cursor", [0])[0]
    error.add_note(f"{kept} of {store.n_chunks} chunks are kept in {store.directory}: run the same command with "
                   f"--resume to compute only the others (the config must not change), or with --overwrite to "
                   f"start again")


def run_production(config: RunConfig, resume: bool = False, progress: bool = True,
                   registry: ComponentRegistry | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run a validated config to completion; return the run summary (also saved as JSON).

    ``resume`` continues an interrupted run of the same config; ``overwrite``
    replaces a previous run's output instead.
    """
    registry = registry or get_registry()
    normalisation = resolve_normalisation(config, registry)
    store = OutputStore(config.output, config.fingerprint(), config.n_chunks,
                        file_metadata(config, normalisation.to_dict()))
    directory_existed = store.directory.exists()
    previous_run = store.manifest_path.exists() or store.staging.exists()
    if resume and not previous_run:
        print(f"shipfastsim: no run to resume at {config.output.path}: starting a fresh one", file=sys.stderr)
    done = store.open(resume, overwrite)
    todo = [chunk for chunk in range(config.n_chunks) if chunk not in done]
    plan = ChunkPlan(tuple(config.stages), config.seed, config.events, config.chunk_size, str(config.device),
                     str(staging_dir_for(config.output)), config.output.target_z0, normalisation.weight_factor,
                     config.output.ntuple_z_offset)
    done_muons = sum(plan.bounds(c)[1] for c in done)
    start = time.perf_counter()
    from tqdm.auto import tqdm

    session_out = 0
    try:
        with tqdm(total=config.events, initial=done_muons, unit=" muons", unit_scale=True, disable=not progress,
                  desc="shipfastsim", dynamic_ncols=True) as bar:
            for chunk, stats in run_chunks(config.executor, plan, todo, registry):
                store.chunk_staged(chunk, stats["muons_out"])
                session_out += stats["muons_out"]
                bar.update(plan.bounds(chunk)[1])
                bar.set_postfix(out=stats["muons_out"], refresh=False)
            store.finish()
    except BaseException as error:
        _after_failure(store, error, fresh=not previous_run or overwrite, directory_existed=directory_existed)
        raise
    wall = time.perf_counter() - start
    files = [(store.directory / entry["name"], entry["entries"]) for entry in store.manifest["files"]]
    summary = build_summary(config, store.manifest["stats"], files, wall, len(todo), resumed=bool(done),
                            normalisation=normalisation.to_dict(), muons_out_this_session=session_out)
    summary["reports"] = [text for text in registry.hook.shipfastsim_report_run(summary=summary) if text]
    write_summary(summary, config.output)
    return summary
