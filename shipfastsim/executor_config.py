"""``run.executor`` of a config: its settings and their check, below the config loader.

`ExecutorConfig` holds the section as given, and `check_executor` refuses what no
executor could run (a batch key without a batch cluster, an amount of memory that is not
bytes, a walltime that is not ``[D-]HH:MM[:SS]``), naming the key, when the config is
loaded; `shipfastsim.executors` runs the chunks on it.  Nothing here imports dask unless a
batch cluster's memory or disk must be parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipfastsim.errors import ConfigError

__all__ = ["ExecutorConfig", "BATCH_CLUSTERS", "INSTALL_HINT", "check_executor", "walltime_seconds"]

@dataclass(frozen=True)
class ExecutorConfig:
    """How chunks are spread: ``serial`` in this process, or ``dask`` workers: a local
    cluster, a running scheduler (``address``) or batch jobs (``cluster``: htcondor,
    slurm; the other fields size each job).  See `shipfastsim.executors`."""

    type: str = "serial"
    workers: int = 2  # worker processes (local, or in all batch jobs together)
    address: str | None = None
    cluster: str = "local"
    cores: int = 1  # per batch job
    processes: int | None = None  # worker processes per batch job (default: one per core)
    memory: str | None = None  # per batch job, e.g. "4GB"
    walltime: str | None = None  # [D-]HH:MM[:SS]
    disk: str | None = None  # HTCondor scratch disk per job
    queue: str | None = None  # SLURM partition
    account: str | None = None  # SLURM account, HTCondor accounting group
    job_extra_directives: list[str] | dict[str, str] | None = None  # SLURM: sbatch options; HTCondor: submit commands
    job_script_prologue: tuple[str, ...] = ()  # shell lines run before the worker (environment setup)
    python: str | None = None  # interpreter on the batch nodes (default: this one)
    log_directory: str | None = None
    local_directory: str | None = None


#: ``run.executor.cluster`` -> the dask-jobqueue cluster class that submits its jobs.
BATCH_CLUSTERS = {"htcondor": "HTCondorCluster", "slurm": "SLURMCluster"}

INSTALL_HINT = "pip install 'shipfastsim[dask]'"
_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+):([0-5]\d)(?::([0-5]\d))?$")  # [D-]HH:MM[:SS], as SLURM's -t
_BATCH_ONLY = ("cores", "processes", "memory", "walltime", "disk", "queue", "account", "job_extra_directives",
               "job_script_prologue", "python", "log_directory", "local_directory")


def walltime_seconds(text: str) -> int:
    """Seconds of a ``[D-]HH:MM[:SS]`` walltime."""
    match = _WALLTIME.match(text)
    if match is None:
        raise ValueError(text)
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _parse_bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return parse_bytes(text)


def check_executor(executor: ExecutorConfig) -> None:
    """Raise `ConfigError` naming the ``run.executor`` key of the first problem."""
    key = "run.executor"
    batch = executor.cluster in BATCH_CLUSTERS
    if executor.address and executor.cluster != "local":
        raise ConfigError(f"{key}.address", f"give either address (a running scheduler) or cluster "
                                            f"{executor.cluster!r}, not both")
    if not batch:
        defaults = ExecutorConfig()
        given = [name for name in _BATCH_ONLY if getattr(executor, name) != getattr(defaults, name)]
        if given:
            raise ConfigError(f"{key}.{given[0]}", f"only batch clusters take it; set cluster to one of "
                                                   f"{', '.join(BATCH_CLUSTERS)}")
        return
    if executor.type != "dask":
        raise ConfigError(f"{key}.cluster", f"batch clusters need type: dask, got type: {executor.type}")
    if executor.memory is None:
        raise ConfigError(f"{key}.memory", f"required with cluster: {executor.cluster} (memory per job, e.g. 4GB)")
    for name in ("memory", "disk"):
        value = getattr(executor, name)
        try:
            if value is not None and _parse_bytes(value) <= 0:
                raise ValueError(value)
        except (ValueError, TypeError):
            raise ConfigError(f"{key}.{name}", f"{value!r} is not an amount of bytes; e.g. 4GB, 500MB, 2GiB") from None
    if executor.cluster == "htcondor" and executor.disk is None:
        raise ConfigError(f"{key}.disk", "required with cluster: htcondor (scratch disk per job, e.g. 2GB)")
    if executor.cluster == "slurm" and executor.disk is not None:
        raise ConfigError(f"{key}.disk", "only cluster: htcondor takes it (SLURM has no per-job disk request)")
    if executor.walltime is not None:
        try:
            walltime_seconds(executor.walltime)
        except ValueError:
            raise ConfigError(f"{key}.walltime", f"{executor.walltime!r} is not a walltime; allowed: HH:MM:SS, "
                                                 "HH:MM or D-HH:MM:SS") from None
    processes = executor.processes or executor.cores
    if processes > executor.cores:
        raise ConfigError(f"{key}.processes", f"{processes} worker processes need at least as many cores "
                                              f"(cores: {executor.cores})")
    directives = executor.job_extra_directives
    if executor.cluster == "slurm" and isinstance(directives, dict):
        raise ConfigError(f"{key}.job_extra_directives", "SLURM takes a list of sbatch options, e.g. "
                                                         "['--qos=normal']")
    if executor.cluster == "htcondor" and isinstance(directives, list | tuple) and directives:
        raise ConfigError(f"{key}.job_extra_directives", "HTCondor takes a mapping of submit commands, e.g. "
                                                         "{'+JobFlavour': '\"workday\"'}")
    if executor.cluster == "htcondor" and executor.queue is not None:
        raise ConfigError(f"{key}.queue", "HTCondor has no queues (use job_extra_directives, e.g. +JobFlavour)")
