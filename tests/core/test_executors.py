"""Batch-cluster executors: the job each would submit, and bad executor configs.

No batch system exists here, so the tests read the job script dask-jobqueue would
hand to ``sbatch`` / ``condor_submit`` for a config's ``run.executor``.
"""

from __future__ import annotations

import pytest
import yaml

from shipfastsim.config import ConfigError, load_config
from shipfastsim.executor_config import walltime_seconds
from shipfastsim.executors import make_batch_cluster

pytest.importorskip("dask_jobqueue", reason="pip install 'shipfastsim[dask]'")


@pytest.fixture
def executor_config(write_config):
    """Load the test config with ``run.executor`` replaced by the given mapping."""

    def load(executor: dict):
        document = yaml.safe_load(write_config().read_text())
        document["run"]["executor"] = executor
        return load_config(write_config(document, name="executor.yaml"))

    return load


def _job_script(executor) -> str:
    cluster = make_batch_cluster(executor)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def test_slurm_job_script_has_the_configured_resources(executor_config):
    config = executor_config({
        "type": "dask", "cluster": "slurm", "workers": 8, "cores": 4, "processes": 2, "memory": "8GB",
        "walltime": "02:30:00", "queue": "short", "account": "ship",
        "job_extra_directives": ["--qos=long", "--constraint=avx2"],
        "job_script_prologue": ["source /cvmfs/ship.cern.ch/setup.sh"]})
    lines = _job_script(config.executor).splitlines()
    for expected in ("#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G", "#SBATCH -t 02:30:00", "#SBATCH -p short",
                     "#SBATCH -A ship", "#SBATCH --qos=long", "#SBATCH --constraint=avx2",
                     "source /cvmfs/ship.cern.ch/setup.sh"):
        assert expected in lines, expected
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    # 2 worker processes of 2 threads each share the job's 4 cores and 8 GB.
    assert "--nworkers 2" in worker and "--nthreads 2" in worker and "--memory-limit 3.73GiB" in worker
    assert lines.index("source /cvmfs/ship.cern.ch/setup.sh") < lines.index(worker)


def test_htcondor_job_script_has_the_configured_resources(executor_config):
    config = executor_config({
        "type": "dask", "cluster": "htcondor", "workers": 4, "cores": 2, "memory": "4GB", "disk": "3GB",
        "walltime": "1-00:30:00", "account": "group_u_SHIP.u_ship",
        "job_extra_directives": {"+JobFlavour": '"tomorrow"', "requirements": '(OpSysAndVer =?= "AlmaLinux9")'}})
    lines = [line.strip() for line in _job_script(config.executor).splitlines()]
    for expected in ("MY.DaskWorkerCores = 2", "RequestCpus = MY.DaskWorkerCores", "MY.DaskWorkerMemory = 4000000000",
                     "MY.DaskWorkerDisk = 3000000000", "+MaxRuntime = 88200", '+JobFlavour = "tomorrow"',
                     'requirements = (OpSysAndVer =?= "AlmaLinux9")', "accounting_group = group_u_SHIP.u_ship"):
        assert expected in lines, expected
    arguments = next(line for line in lines if line.startswith("Arguments"))
    assert "--nworkers 2" in arguments and "--nthreads 1" in arguments  # one single-threaded worker per core


def test_walltime_seconds_by_hand():
    assert walltime_seconds("02:30:00") == 9000
    assert walltime_seconds("1-00:30:15") == 86400 + 1800 + 15
    assert walltime_seconds("45:00") == 45 * 3600  # HH:MM


@pytest.mark.parametrize(("executor", "key", "words"), [
    ({"type": "dask", "cluster": "pbs", "memory": "4GB"}, "run.executor.cluster", "local, htcondor, slurm"),
    ({"type": "dask", "cluster": "slurm"}, "run.executor.memory", "required"),
    ({"type": "dask", "cluster": "slurm", "memory": "lots"}, "run.executor.memory", "4GB"),
    ({"type": "dask", "cluster": "slurm", "memory": "4GB", "walltime": "2 hours"}, "run.executor.walltime",
     "HH:MM:SS"),
    ({"type": "dask", "cluster": "htcondor", "memory": "4GB"}, "run.executor.disk", "required"),
    ({"type": "dask", "cluster": "slurm", "memory": "4GB", "cores": 0}, "run.executor.cores", "minimum 1"),
    ({"type": "dask", "cluster": "slurm", "memory": "4GB", "cores": 2, "processes": 3}, "run.executor.processes",
     "cores"),
    ({"type": "dask", "cluster": "slurm", "memory": "4GB", "job_extra_directives": {"qos": "long"}},
     "run.executor.job_extra_directives", "list"),
    ({"type": "dask", "cluster": "htcondor", "memory": "4GB", "disk": "1GB", "job_extra_directives": ["x"]},
     "run.executor.job_extra_directives", "mapping"),
    ({"type": "dask", "workers": 2, "memory": "4GB"}, "run.executor.memory", "batch clusters"),
    ({"type": "dask", "cluster": "slurm", "address": "tcp://h:8786", "memory": "4GB"}, "run.executor.address",
     "not both"),
    ({"type": "serial", "cluster": "slurm", "memory": "4GB"}, "run.executor.cluster", "type: dask"),
    ({"type": "dask", "cluster": "slurm", "memory": "4GB", "wall": "01:00:00"}, "run.executor", "'wall'"),
])
def test_bad_executor_is_a_config_error_naming_the_key(executor_config, executor, key, words):
    with pytest.raises(ConfigError) as error:
        executor_config(executor)
    assert error.value.key == key
    assert words in str(error.value)
