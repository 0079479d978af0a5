"""Run summary: muons in and out and time per stage, as a table and as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shipfastsim.config import OutputConfig, RunConfig
from shipfastsim.provenance import accepted_mismatches

__all__ = ["build_summary", "write_summary", "summary_path", "format_summary", "file_metadata", "fairship_reading"]


def summary_path(output: OutputConfig) -> Path:
    """``<output stem>.summary.json`` beside the output."""
    return output.path.parent / f"{output.path.stem}.summary.json"


def fairship_reading(config: RunConfig, path: Path | str, entries: int) -> dict[str, Any]:
    """How FairShip's run_simScript.py must read one output file (command and reasons)."""
    from shipfastsim.adapters.fairship import output_kind, run_simscript_command

    rotated = any(stage.component == "phi-rotation" for stage in config.stages)
    return run_simscript_command(path, entries, output_kind(config.stages), rotated, config.output.ntuple_z_offset)


def file_metadata(config: RunConfig, normalisation: dict[str, Any]) -> dict[str, Any]:
    """What every output file records beside its tree (and the summary repeats)."""
    from shipfastsim import __version__
    from shipfastsim.adapters.fairship import output_kind

    reading = fairship_reading(config, config.output.path.name, 0)
    return {
        "shipfastsim_version": __version__,
        "config_fingerprint": config.fingerprint(),
        "seed": config.seed,
        "output_kind": output_kind(config.stages),
        "stages": [f"{stage.kind}:{stage.component}" for stage in config.stages],
        "normalisation": normalisation,
        "weight_unit": normalisation["weight_unit"],
        "pot_equivalent": normalisation["pot_equivalent"],
        "row_order": f"seeded random order within each chunk of {config.chunk_size} generated muons",
        "ntuple_z_offset_cm": config.output.ntuple_z_offset,
        "target_z0_cm": config.output.target_z0,
        "fairship_options": f"--MuonBack -f FILE -i FIRST -n N {reading['reading_options']}".strip(),
        "fairship_notes": reading["notes"],
    }


def build_summary(config: RunConfig, stats: dict[str, Any], files: list[tuple[Path, int]], wall_seconds: float,
                  chunks_this_session: int, resumed: bool,
                  normalisation: dict[str, Any] | None = None,
                  muons_out_this_session: int | None = None) -> dict[str, Any]:
    """Combine the chunks' statistics with the run's identity and timing.

    Stage seconds are summed over chunks (all sessions of a resumed run); wall
    seconds, and the wall throughput, are those of this session only: the muons of
    the chunks computed now (``muons_out_this_session``) over this session's time, so
    a resume that computes nothing reports no throughput rather than an inflated one.
    """
    session_out = stats["muons_out"] if muons_out_this_session is None else muons_out_this_session
    stages = []
    for stage, stage_stats in zip(config.stages, stats["stages"], strict=True):
        seconds = stage_stats["seconds"]
        stages.append({"kind": stage.kind, "component": stage.component, **stage_stats,
                       "muons_per_second": stage_stats["muons_in"] / seconds if seconds > 0 else None})
    generated = stats["stages"][0]["muons_out"]
    busy = stats["stage_seconds"] + stats["staging_seconds"]
    return {
        "config": str(config.source) if config.source else None,
        "fingerprint": config.fingerprint(),
        "seed": config.seed,
        "device": str(config.device),
        "executor": config.executor.type,
        "events": config.events,
        "chunks": stats["chunks"],
        "chunks_this_session": chunks_this_session,
        "resumed": resumed,
        "muons_generated": generated,
        "muons_out": stats["muons_out"],
        "weight_out": stats["stages"][-1]["weight_out"],
        "stages": stages,
        "counters": stats["counters"],
        "stage_seconds": stats["stage_seconds"],
        "staging_seconds": stats["staging_seconds"],
        "wall_seconds": wall_seconds,
        "generated_muons_per_second": generated / busy if busy > 0 else None,
        "muons_out_this_session": session_out,
        "output_muons_per_second_wall": session_out / wall_seconds if wall_seconds > 0 and session_out else None,
        "files": [{"path": str(path), "entries": entries} for path, entries in files],
        "normalisation": normalisation,
        "fairship": [fairship_reading(config, path, entries) for path, entries in files],
        "geometry_mismatches_allowed": accepted_mismatches(config),
    }


def write_summary(summary: dict[str, Any], output: OutputConfig) -> Path:
    """Write the summary JSON atomically (temporary file renamed into place): a reader,
    or a run killed while writing it, never leaves a half-written summary."""
    path = summary_path(output)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, path)
    return path


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    header = f"{'stage':<11} {'component':<18} {'muons in':>12} {'muons out':>12} {'weight out':>12} " \
             f"{'seconds':>9} {'muons/s':>11}"
    lines = [header, "-" * len(header)]
    for stage in summary["stages"]:
        rate = stage["muons_per_second"]
        lines.append(f"{stage['kind']:<11} {stage['component']:<18} {stage['muons_in']:>12,} "
                     f"{stage['muons_out']:>12,} {stage['weight_out']:>12.6g} {stage['seconds']:>9.2f} "
                     f"{(f'{rate:,.0f}' if rate else '-'):>11}")
    lines.append("-" * len(header))
    rate = summary["output_muons_per_second_wall"]
    session = summary.get("muons_out_this_session", summary["muons_out"])
    lines.append(f"chunks {summary['chunks']} ({summary['chunks_this_session']} this session), "
                 f"{summary['muons_out']:,} muons out ({session:,} this session) in {summary['wall_seconds']:.2f} s "
                 f"wall ({(f'{rate:,.0f}' if rate else '-')} muons/s this session, output writing included)")
    for name, count in sorted(summary["counters"].items()):
        if name.count("/") < 2:  # deeper keys are tables for a plugin's report; all stay in the JSON
            lines.append(f"{name}: {count:,}")
    for entry in summary["files"]:
        lines.append(f"wrote {entry['path']} ({entry['entries']:,} muons)")
    normalisation = summary.get("normalisation")
    if normalisation:
        if normalisation["per_spill"]:
            lines.append(f"weights: {normalisation['weight_unit']}; the run stands for "
                         f"{normalisation['pot_equivalent']:.4g} protons on target; sum of w out "
                         f"{summary['weight_out']:.6g} muons per spill")
        else:
            lines.append(f"WARNING: {normalisation['warning']}")
    lines.extend(f"WARNING (allow_geometry_mismatch): {m}" for m in summary.get("geometry_mismatches_allowed", []))
    for reading in summary.get("fairship", [])[:1]:
        lines.append(f"FairShip: {reading['command']}")
        lines.extend(f"  ({note})" for note in reading["notes"])
    for report in summary.get("reports", []):
        lines.extend(["", report])
    return "\n".join(lines)
