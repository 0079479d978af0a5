"""Core subcommands: ``run``, ``check`` and ``plugins``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _overrides(args: argparse.Namespace) -> dict:
    output = getattr(args, "output", None)
    return {
        "run.events": getattr(args, "events", None),
        "run.seed": getattr(args, "seed", None),
        # A path given on the command line is relative to the working directory.
        "run.output.path": str(Path(output).resolve()) if output else None,
    }


def _run(args: argparse.Namespace) -> int:
    from shipfastsim.config import load_config
    from shipfastsim.runner import run_production
    from shipfastsim.summary import format_summary, summary_path

    if args.workers is not None and args.workers < 1:
        from shipfastsim.errors import UsageError

        raise UsageError(f"--workers: {args.workers} is below the minimum 1 (local dask workers to start)")
    config = load_config(args.config, _overrides(args))
    if args.workers is not None:
        from dataclasses import replace

        config.executor = replace(config.executor, type="dask", workers=args.workers)
    if args.resume and args.overwrite:
        from shipfastsim.errors import UsageError

        raise UsageError("--resume and --overwrite exclude each other")
    summary = run_production(config, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    print(format_summary(summary))
    print(f"summary: {summary_path(config.output)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from shipfastsim.config import load_config

    config = load_config(args.config, _overrides(args))
    stages = " -> ".join(f"{s.kind} {s.component}" for s in config.stages)
    print(f"{args.config}: OK ({config.events:,} muons in {config.n_chunks} chunks; {stages}; "
          f"output {config.output.path})")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from shipfastsim.provenance import describe, read_provenance
    from shipfastsim.registry import get_registry

    for component in get_registry().all():
        spec = component.spec
        print(f"{spec.kind:<11} {spec.name:<20} [{component.source}; plugin {component.plugin_name}]")
        print(f"    {spec.description}")
        for parameter in spec.parameters:
            default = "required" if parameter.required else f"default {parameter.default!r}"
            choices = f" one of {list(parameter.choices)}" if parameter.choices else ""
            print(f"    - {parameter.name} ({parameter.type}{choices}, {default}): {parameter.doc}")
            if str(parameter.default).endswith(".safetensors"):  # a bundled model: what it learnt from
                print(f"        learnt from: {describe(read_provenance(parameter.default))}")
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The config and its overrides, the same for ``run`` and ``check``."""
    parser.add_argument("config", help="YAML production config")
    parser.add_argument("--events", type=int, help="override run.events (muons the generator makes)")
    parser.add_argument("--output", help="override run.output.path (a relative path is relative to the working "
                                         "directory, not to the config)")
    parser.add_argument("--seed", type=int, help="override run.seed")


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run a YAML production config",
                                description="Run a production config: the muons go to run.output.path, the summary "
                                            "to <output>.summary.json beside it.")
    _add_config_arguments(run)
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from its last complete chunk")
    run.add_argument("--overwrite", action="store_true", help="replace the output of a previous run")
    run.add_argument("--workers", type=int, help="run on this many dask workers (at least 1): sets "
                                                 "run.executor.type to dask and its workers")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    check = subparsers.add_parser("check", help="validate a YAML production config without running it",
                                  description="Check everything that can be known without running: the schema, every "
                                              "stage parameter, recording planes, referenced files.  Problems are one "
                                              "line each, exit status 2.")
    _add_config_arguments(check)
    check.set_defaults(func=_check)

    plugins = subparsers.add_parser("plugins", help="list every registered component and its parameters")
    plugins.set_defaults(func=_plugins)
