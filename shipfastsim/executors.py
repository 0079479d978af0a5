"""Executors: where the chunks of a run are made (``run.executor`` of a config).

* ``{type: serial}``: one chunk after the other in this process.
* ``{type: dask, workers: N}``: a LocalCluster of N single-threaded worker processes.
* ``{type: dask, address: tcp://host:8786}``: the workers of a running dask scheduler.
* ``{type: dask, cluster: htcondor | slurm, workers: N, cores, memory, walltime, ...}``:
  N worker processes in batch jobs submitted through dask-jobqueue, ``processes``
  workers and ``cores`` cores per job (CERN batch is HTCondor; many HPC sites SLURM).

Each executor yields ``(chunk, result)`` of a picklable per-chunk task as chunks
finish, in any order (`map_chunks`); for a production run (`run_chunks`) the result is
the chunk's statistics and the runner assembles the output in chunk order.  Dask
workers stage their chunks themselves, so a remote scheduler or batch jobs need the
output directory on a shared filesystem.
A worker that dies mid-chunk (killed, pre-empted, out of its walltime) loses nothing:
the scheduler reruns the chunk on another worker, and since chunk k depends only on
(seed, k) and staging is an atomic rename, the rerun stages the same bytes once.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipfastsim.chunks import ChunkPlan, run_chunk
from shipfastsim.executor_config import BATCH_CLUSTERS, INSTALL_HINT, ExecutorConfig, check_executor, walltime_seconds

if TYPE_CHECKING:
    from shipfastsim.registry import ComponentRegistry

__all__ = ["run_chunks", "map_chunks", "serial_chunks", "dask_chunks", "make_batch_cluster"]

def make_batch_cluster(executor: ExecutorConfig) -> Any:
    """The dask-jobqueue cluster of a batch ``run.executor`` (not yet scaled: nothing
    is submitted until ``cluster.scale``; ``cluster.job_script()`` shows each job)."""
    try:
        import dask_jobqueue
    except ImportError as error:
        raise ImportError(f"batch clusters need dask-jobqueue: {INSTALL_HINT}") from error
    check_executor(executor)
    cls = getattr(dask_jobqueue, BATCH_CLUSTERS[executor.cluster])
    processes = executor.processes or executor.cores
    options: dict[str, Any] = {
        "cores": executor.cores, "processes": processes, "memory": executor.memory,
        "python": executor.python or sys.executable,
        "job_script_prologue": list(executor.job_script_prologue),
        "scheduler_options": {"dashboard_address": None},
    }
    options |= {name: getattr(executor, name) for name in ("log_directory", "local_directory")
                if getattr(executor, name) is not None}
    directives = executor.job_extra_directives
    if executor.cluster == "slurm":
        options |= {"walltime": executor.walltime, "queue": executor.queue, "account": executor.account,
                    "job_extra_directives": list(directives or [])}
    else:
        extra = dict(directives or {})
        if executor.walltime is not None:
            # CERN batch stops a job after +MaxRuntime seconds
            # (https://batchdocs.web.cern.ch/local/submit.html); HTCondor itself has no walltime.
            extra.setdefault("+MaxRuntime", str(walltime_seconds(executor.walltime)))
        if executor.account is not None:
            extra.setdefault("accounting_group", executor.account)
        options |= {"disk": executor.disk, "job_extra_directives": extra}
    return cls(**options)


@dataclass(frozen=True)
class _PlanTask:
    """A production run's chunk task: make chunk k of ``plan`` and stage it (picklable)."""

    plan: ChunkPlan
    registry: ComponentRegistry

    def __call__(self, chunk: int) -> dict[str, Any]:
        return run_chunk(self.plan, chunk, self.registry)


#: Per worker process, the task of each run it works for, by run token.  A task travels
#: with every submission and unpickles with empty stage caches (`Stage.cache` is never
#: pickled); the first copy is kept so that loaded models and transports are built
#: once per worker, not once per chunk.
_WORKER_TASKS: dict[str, Callable[[int], Any]] = {}


def _worker_chunk(token: str, task: Callable[[int], Any], chunk: int) -> tuple[int, Any]:
    kept = _WORKER_TASKS.get(token)
    if kept is None:
        if len(_WORKER_TASKS) >= 4:  # a long-lived worker of a shared scheduler: forget old runs
            _WORKER_TASKS.pop(next(iter(_WORKER_TASKS)), None)
        kept = _WORKER_TASKS.setdefault(token, task)
    return chunk, kept(chunk)


def serial_chunks(task: Callable[[int], Any], todo: list[int]) -> Iterator[tuple[int, Any]]:
    """``(chunk, task(chunk))`` for the chunks ``todo``, one after the other in this process."""
    for chunk in todo:
        yield chunk, task(chunk)


def dask_chunks(executor: ExecutorConfig, task: Callable[[int], Any], todo: list[int]
                ) -> Iterator[tuple[int, Any]]:
    """``(chunk, task(chunk))`` for the chunks ``todo`` on dask workers, about two in flight
    per worker, as they finish.  ``task`` must be picklable, and its result too."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as error:
        raise ImportError(f"the dask executor needs dask.distributed: {INSTALL_HINT}") from error
    if executor.address:
        cluster, expected = None, 1
    elif executor.cluster in BATCH_CLUSTERS:
        cluster, expected = make_batch_cluster(executor), executor.workers
        cluster.scale(executor.workers)
    else:
        import dask

        # dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536 (freed memory goes
        # back to the OS at once); torch's large per-chunk temporaries are then faulted in
        # afresh for every operation: twice the CPU per chunk (nf-after-shield, 1e5 muons).
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=executor.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        expected = executor.workers
    client = Client(executor.address or cluster)
    token = uuid.uuid4().hex
    try:
        pending = iter(todo)
        futures = as_completed()

        def top_up() -> None:
            # Batch workers arrive while the run goes on: keep two chunks per worker queued.
            wanted = 2 * max(expected, len(client.nthreads()))
            while futures.count() < wanted:
                chunk = next(pending, None)
                if chunk is None:
                    return
                futures.add(client.submit(_worker_chunk, token, task, chunk, pure=False))

        top_up()
        for future in futures:
            chunk, result = future.result()
            top_up()
            yield chunk, result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def map_chunks(executor: ExecutorConfig, task: Callable[[int], Any], todo: list[int]
               ) -> Iterator[tuple[int, Any]]:
    """``(chunk, task(chunk))`` for every chunk in ``todo``, as they finish, on ``executor``:
    any per-chunk work whose chunk k depends on k alone (``shipfastsim train chain``'s
    transport as well as a production's chunks)."""
    if executor.type == "dask":
        return dask_chunks(executor, task, todo)
    return serial_chunks(task, todo)


def run_chunks(executor: ExecutorConfig, plan: ChunkPlan, todo: list[int], registry: ComponentRegistry
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(chunk, stats)`` of every chunk of a production run in ``todo``, as they finish, on ``executor``."""
    return map_chunks(executor, _PlanTask(plan, registry), todo)
