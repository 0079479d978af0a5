"""The steps of ``shipfastsim train chain`` in DIR, each kept with a marker, so a rerun resumes.

1. ``sample``: the transported training sample (`sample.make_sample`), written as
   ``sample/sample.npz`` with the flows' ``training_data.npz`` and the filter's
   ``labelled_muons.npz`` made from it;
2. ``nf-after-shield``, ``nf-decay-vessel``, ``mlp-filter``: each trained on the sample by
   its own trainer (`TRAINERS`), in a folder of its name (weights, JSON with provenance,
   and the held-out rows of its split: ``holdout_shield_end.npz``, ``holdout_decay_vessel.npz``,
   ``mlp_filter_holdout.npz``, the test samples of a bundled model);
3. ``report``: each model against held-out truth with the gates (`report`), ``report.json``
   and ``report.md``.

A step is done when its folder holds ``done.json`` (written last, by an atomic rename);
a rerun skips the steps that are done and redoes an unfinished one from the start, except
that an unfinished sample step whose ``sample.npz`` was written (whole: `ChainSample.save`)
makes its other two files from it instead of transporting again.  The
arguments are recorded in ``DIR/chain.json`` at the first run; a rerun whose arguments
differ is refused, naming each difference.  ``workers`` is not recorded: the sample is the
same for any number of workers, so a resumed run may use another.

The sample step runs in a process of its own (`run_sample_isolated`, unless `ISOLATE_SAMPLE`
or ``run_chain(isolate_sample=False)`` says otherwise), which writes its marker and ends
before the trainings start: a transport of 10^8 muons left ~20 GB in this process (glibc
keeps freed memory), and nf-after-shield's 12.5 GB then did not fit in 24 GB.  A child
that fails or is killed (the out-of-memory killer's SIGKILL) is a `StepError` naming how
it ended; the rerun resumes from what it kept.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from shipfastsim.errors import ConfigError, StepError, UsageError
from shipfastsim.plugins.train_chain.sample import SampleSettings, load_sample, make_sample, sample_meta

__all__ = ["ChainSettings", "TrainingKnobs", "STEPS", "TRAINERS", "MARKER", "ISOLATE_SAMPLE", "SAMPLE_TARGET",
           "run_chain", "run_sample_isolated", "step_done"]

MARKER = "done.json"
#: Generated muons whose copies mlp-filter learns from, unless ``--filter-muons`` says otherwise:
#: 3x10^7 rows at 10 copies, which trained in 4 minutes within 24 GB (a 1.2x10^8-row sample
#: did not fit).
FILTER_MUONS = 3_000_000
ARGUMENTS = "chain.json"
#: Whether `run_chain` runs the sample step in a process of its own (its ``isolate_sample``
#: default): False only for tests that replace `make_sample` or ``save_labelled`` in this
#: process, which a spawned child, importing its modules afresh, would not see.
ISOLATE_SAMPLE = True
#: What the sample step's process runs, as ``module:function`` with `_sample_step`'s
#: arguments: a name, not a function object, because a spawned child imports it afresh, and
#: so a test can give its own (a child that fails) by name.
SAMPLE_TARGET = "shipfastsim.plugins.train_chain.steps:_sample_step"


class _ChildTraceback(Exception):
    """The traceback of an exception raised in the step's process, as text: the cause of the
    `StepError` (or `UsageError`) raised here, so that ``--debug`` shows where it happened."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class TrainingKnobs:
    """Sizes of the three trainings (None: each trainer's own default): ``flow_steps`` of
    both flows, ``filter_epochs`` of the filter, ``hidden`` width and ``layers`` of all three
    networks, the flows' ``batch_size``, ``eval_every`` (flow steps between validations) and
    the wall-clock limit ``max_minutes`` of each training, the flows' ``patience``
    (validations without a better loss before a flow stops), ``knots`` of nf-after-shield's
    Gaussianising maps and ``filter_muons``, the generated muons whose copies the filter
    learns from (the first ones; None: `FILTER_MUONS`)."""

    flow_steps: int | None = None
    filter_epochs: int | None = None
    hidden: int | None = None
    layers: int | None = None
    batch_size: int | None = None
    eval_every: int | None = None
    max_minutes: float | None = None
    patience: int | None = None
    knots: int | None = None
    filter_muons: int | None = None


@dataclass(frozen=True)
class ChainSettings:
    """Everything a chain's result depends on (recorded in ``chain.json``)."""

    sample: SampleSettings
    knobs: TrainingKnobs = field(default_factory=TrainingKnobs)

    def record(self) -> dict[str, Any]:
        return {"sample": asdict(self.sample), "training": asdict(self.knobs)}


def step_done(directory: Path) -> bool:
    """Whether a step's folder holds its marker."""
    return (directory / MARKER).is_file()


def _mark(directory: Path, step: str, seconds: float) -> None:
    temporary = directory / (MARKER + ".partial")
    temporary.write_text(json.dumps({"step": step, "seconds": seconds, "finished": time.time()}) + "\n")
    os.replace(temporary, directory / MARKER)


def _sample_step(settings: ChainSettings, directory: Path, workers: int, progress: bool) -> None:
    from shipfastsim.plugins.mlp_filter.labels import save_labelled

    path = directory / "sample.npz"
    if path.is_file():  # transported before a crash: written whole (`ChainSample.save`), not redone
        sample = load_sample(path)
        if sample.meta["settings"] != asdict(settings.sample):
            raise UsageError(f"{path} was made with other settings ({sample.meta['settings']}): remove it, or "
                             f"give another --output")
    else:
        sample = make_sample(settings.sample, workers, progress)
        sample.save(path)
    sample.training_data().save(directory / "training_data.npz")
    save_labelled(sample.labelled(), directory / "labelled_muons.npz")


def _target(name: str) -> Callable[[ChainSettings, Path, int, bool], None]:
    """The function named ``module:function`` (`SAMPLE_TARGET`)."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _sample_child(target: str, report: Connection, settings: ChainSettings, directory: Path, workers: int,
                  progress: bool) -> None:
    """The sample step's own process: ``target`` (`SAMPLE_TARGET`) and the step's marker, as
    `run_chain` does in-process; ``report`` (the write end of a pipe) gets ``{"failed": False}``
    after the marker, or what was raised (type, message, traceback: text, which always
    pickles, unlike some exceptions) and the process exits with status 1 without printing it
    (the parent raises it, one line unless ``--debug``)."""
    try:
        start = time.perf_counter()
        _target(target)(settings, directory, workers, progress)
        _mark(directory, "sample", time.perf_counter() - start)
    except Exception as error:
        report.send({"failed": True, "type": type(error).__name__, "message": str(error),
                     "usage": isinstance(error, UsageError | ConfigError), "traceback": traceback.format_exc()})
        sys.exit(1)
    report.send({"failed": False})


def _how_it_ended(exitcode: int | None) -> str:
    """A child's exit code in words (negative: killed by that signal)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "an unknown signal"
        why = " (the out-of-memory killer sends it when the machine runs out of memory)" \
            if -exitcode == signal.SIGKILL else ""
        return f"was killed by signal {-exitcode}, {name}{why}"
    return f"ended with exit code {exitcode}"


def run_sample_isolated(settings: ChainSettings, directory: Path, workers: int, progress: bool,
                        target: str | None = None) -> None:
    """The sample step in a process of its own (`_sample_child` running ``target``, default
    `SAMPLE_TARGET`), which writes the step's marker; return once it has ended, so that the
    memory of the transport is the system's again before a training starts.

    Started by spawn, as the dask workers are: a forked child would share this process's
    threads' locks and, under copy-on-write, its memory.  Its output goes to this process's
    terminal (it inherits standard output and error).  Raises `UsageError` for a usage error
    in the child (the same message as in-process), `StepError` for any other failure, exit
    code or signal, or a child that ended without its marker."""
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    # not a daemon: the child starts the dask workers, and a daemonic process may not have children
    process = context.Process(target=_sample_child, name="train chain: sample", daemon=False,
                              args=(target or SAMPLE_TARGET, writer, settings, directory, workers, progress))
    sys.stdout.flush()  # what this process printed comes before the child's output
    sys.stderr.flush()
    process.start()
    writer.close()  # the child holds the only write end: the pipe ends when the child does
    try:
        report = _wait(process, reader)
        process.join()
    finally:
        if process.is_alive():  # this process was interrupted (Ctrl-C, an error): do not leave the child behind
            process.terminate()
            process.join()
        reader.close()
    resume = f"rerunning the same command resumes from the outputs kept in {directory.parent}"
    if report is not None and report["failed"]:
        cause = _ChildTraceback(report["traceback"])
        if report["usage"]:
            raise UsageError(report["message"]) from cause
        first = (report["message"].strip().splitlines() or [""])[0]
        raise StepError(f"train chain: the sample step failed in its own process with {report['type']}: {first}; "
                        f"{resume}") from cause
    if process.exitcode != 0:
        raise StepError(f"train chain: the sample step's process {_how_it_ended(process.exitcode)}; {resume}")
    if not step_done(directory):
        raise StepError(f"train chain: the sample step's process ended without marking the step done "
                        f"({directory / MARKER}); {resume}")


def _wait(process: BaseProcess, reader: Connection) -> dict[str, Any] | None:
    """The child's report, or None when it ended without one (killed, or ``os._exit``).

    Polls rather than blocking on ``recv``: a process the child started holding the write end
    (none should: spawn passes no descriptors) would otherwise keep the pipe open after the
    child was killed, and this process would wait for ever."""
    while True:
        # whether it has ended, asked before the poll: a report it sent before it ended is then in the pipe
        ended = not process.is_alive()
        if reader.poll(0 if ended else 1.0):
            try:
                return reader.recv()
            except EOFError:  # the pipe ended without a report
                return None
        if ended:
            return None


def _train_nf_after_shield(settings: ChainSettings, sample_dir: Path, output: Path, progress: bool) -> None:
    from argparse import Namespace

    from shipfastsim.plugins.nf_after_shield.cli import train_nf_after_shield

    k = settings.knobs
    train_nf_after_shield(Namespace(input=[str(sample_dir / "training_data.npz")], output=output,
                                    seed=settings.sample.seed, max_steps=k.flow_steps, eval_every=k.eval_every,
                                    max_minutes=k.max_minutes, batch_size=k.batch_size, hidden=k.hidden,
                                    layers=k.layers, knots=k.knots, quiet=not progress, peer=False,
                                    patience=k.patience,
                                    geometry=settings.sample.geometry))


def _train_nf_decay_vessel(settings: ChainSettings, sample_dir: Path, output: Path, progress: bool) -> None:
    from shipfastsim.plugins.nf_after_shield.decay_vessel import train_decay_vessel

    k = settings.knobs
    sizes = {"steps": k.flow_steps, "hidden": k.hidden, "layers": k.layers, "batch_size": k.batch_size,
             "eval_every": k.eval_every, "max_minutes": k.max_minutes, "patience": k.patience}
    # every_row False: the holdout split stays out of training, so the report's gates are on
    # muons the model never saw (the trainer's default trains on every row of a recipe that
    # has an independent transport run to test on).
    train_decay_vessel([sample_dir / "training_data.npz"], output, seed=settings.sample.seed,
                       geometry=settings.sample.geometry, progress=progress, every_row=False,
                       **{name: value for name, value in sizes.items() if value is not None})


def _train_mlp_filter(settings: ChainSettings, sample_dir: Path, output: Path, progress: bool) -> None:
    from argparse import Namespace

    from shipfastsim.plugins.mlp_filter.cli import train_mlp_filter
    from shipfastsim.plugins.mlp_filter.labels import load_labelled

    k = settings.knobs
    # the copies of the first filter_muons generated muons (whole muons: the filter's splits
    # keep a muon's copies together); the filter's trainer holds several copies of its rows,
    # so 1.2x10^8 rows do not fit in 24 GB
    labelled = load_labelled(sample_dir / "labelled_muons.npz")
    limit = FILTER_MUONS if k.filter_muons is None else k.filter_muons
    if labelled.group.max() >= limit:
        labelled = labelled.select(labelled.group < limit)
    labelled.meta["filter_muons"] = min(limit, settings.sample.muons)
    arguments = Namespace(input=[], output=output, seed=settings.sample.seed,
                          max_steps=k.filter_epochs, patience=None, max_minutes=k.max_minutes, batch_size=None,
                          hidden=k.hidden, layers=k.layers, label="P1", quiet=not progress)
    try:
        train_mlp_filter(arguments, labelled)
    except ValueError as error:  # too few P1 muons for the working point: the sample is too small
        raise UsageError(f"mlp-filter cannot be trained on this sample: {error}; run the chain with more --muons "
                         f"in another --output") from error


#: Step 2: component -> trainer(settings, sample folder, output folder, progress), in this order.
TRAINERS: dict[str, Callable[[ChainSettings, Path, Path, bool], None]] = {
    "nf-after-shield": _train_nf_after_shield, "nf-decay-vessel": _train_nf_decay_vessel,
    "mlp-filter": _train_mlp_filter}
#: Every step's folder name in DIR, in order.
STEPS = ("sample", *TRAINERS, "report")


def _check_arguments(settings: ChainSettings, output: Path) -> None:
    """Record the arguments at the first run; refuse a rerun whose arguments differ."""
    path = output / ARGUMENTS
    current = settings.record()
    if not path.is_file():
        output.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=1) + "\n")
        return
    recorded = json.loads(path.read_text())
    differences = [f"{name} {current[group].get(name)!r} (recorded {value!r})"
                   for group in ("sample", "training") for name, value in recorded.get(group, {}).items()
                   if current[group].get(name) != value]
    if differences:
        raise UsageError(f"{output} holds a chain made with other arguments: {'; '.join(differences)}; give the "
                         f"recorded ones to resume it, or another --output")


def run_chain(settings: ChainSettings, output: str | Path, workers: int = 2, progress: bool = True,
              isolate_sample: bool | None = None) -> dict[str, Any]:
    """Run (or resume) the chain in ``output``; return the report (see the module docstring).

    ``isolate_sample``: run the sample step in a process of its own (`run_sample_isolated`);
    None: `ISOLATE_SAMPLE` (True).  In this process (False), it is what tests that replace
    its functions here need."""
    from shipfastsim.plugins.train_chain.report import write_report

    output = Path(output)
    _check_arguments(settings, output)
    sample_dir = output / "sample"
    for step in STEPS:
        directory = output / step
        if step_done(directory):
            if progress:
                print(f"train chain: {step} done before, kept", flush=True)
            continue
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if progress:
            print(f"train chain: {step}", flush=True)
        if step == "sample" and (ISOLATE_SAMPLE if isolate_sample is None else isolate_sample):
            # the child marks the step done itself; its memory is the system's again when it returns
            run_sample_isolated(settings, directory, workers, progress)
            continue
        if step == "sample":
            _sample_step(settings, directory, workers, progress)
        elif step == "report":
            write_report(settings, output, sample_meta(sample_dir / "sample.npz"), directory)
        else:
            TRAINERS[step](settings, sample_dir, directory, progress)
        _mark(directory, step, time.perf_counter() - start)
    return json.loads((output / "report" / "report.json").read_text())
