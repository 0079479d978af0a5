"""A dask worker killed mid-run loses and duplicates nothing.

Real workers: a 2-process LocalCluster.  A test filter (keeps every muon) marks
which process starts each chunk and then pauses, so that the test can SIGKILL a
worker while it is inside a chunk; the nanny restarts the worker, the scheduler
reruns the chunk, and the output must equal the uninterrupted serial run's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from shipfastsim import hookimpl
from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.batch import MuonBatch
from shipfastsim.components import ComponentSpec, FilterDecision, Parameter
from shipfastsim.config import load_config
from shipfastsim.output import _atomic_write_bytes
from shipfastsim.registry import ComponentRegistry, get_plugin_manager
from shipfastsim.runner import run_production

pytest.importorskip("distributed", reason="pip install 'shipfastsim[dask]'")


class PausingFilter:
    """Keeps every muon; writes ``<markers>/chunk-K.pid-P`` when process P starts
    chunk K, then sleeps ``pause`` seconds (module level: workers unpickle it).  Its
    per-process state (a stand-in for a loaded model) is built through `Stage.cached`
    and leaves ``<markers>/built-K.pid-P`` when built for chunk K."""

    spec = ComponentSpec("pause-test", "filter", "test filter that pauses in every chunk",
                         (Parameter("markers", "str", "", "marker directory"),
                          Parameter("pause", "float", 0.3, "seconds per chunk")))

    @hookimpl
    def shipfastsim_declare_components(self):
        return [self.spec]

    @hookimpl
    def shipfastsim_filter_muons(self, stage, batch, context):
        if stage.component != self.spec.name:
            return None
        markers = Path(stage.params["markers"])
        stage.cached("model", lambda: (markers / f"built-{context.chunk_index}.pid-{os.getpid()}").touch())
        (markers / f"chunk-{context.chunk_index}.pid-{os.getpid()}").touch()
        if "MALLOC_TRIM_THRESHOLD_" in os.environ:  # dask's default, twice the CPU of torch chunks
            (markers / f"trimmed.pid-{os.getpid()}").touch()
        time.sleep(stage.params["pause"])
        return FilterDecision(keep=batch.pz == batch.pz)


def _registry() -> ComponentRegistry:
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(PausingFilter(), name="pause-test")
    return ComponentRegistry(manager)


def _read(summary) -> MuonBatch:
    return MuonBatch.concat([read_ntuple(f["path"])[0] for f in summary["files"]])


def _kill_a_worker_mid_chunk(markers: Path, first_chunk: int, killed: dict, stop: threading.Event) -> None:
    """SIGKILL the process that starts chunk ``first_chunk`` or later, while it pauses in it."""
    while not stop.is_set():
        for marker in markers.glob("chunk-*.pid-*"):
            chunk, pid = (int(part.split("-")[1]) for part in marker.name.split("."))
            if chunk >= first_chunk and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                killed.update(chunk=chunk, pid=pid)
                return
        time.sleep(0.01)


def test_killed_worker_loses_and_duplicates_nothing(tmp_path, write_config):
    markers = tmp_path / "markers"
    markers.mkdir()
    document = yaml.safe_load(write_config().read_text())
    document["run"].update(events=2000, chunk_size=250)  # 8 chunks
    document["run"]["output"]["muons_per_file"] = 2500
    document["stages"].append({"filter": "pause-test", "params": {"markers": str(markers), "pause": 0.0}})
    serial = run_production(load_config(write_config(document, name="serial.yaml"), registry=_registry()),
                            progress=False, registry=_registry())

    for marker in markers.iterdir():
        marker.unlink()
    document["stages"][-1]["params"]["pause"] = 0.5  # the muons do not depend on it
    document["run"]["executor"] = {"type": "dask", "workers": 2}
    document["run"]["output"]["path"] = str(tmp_path / "dask" / "muons.root")
    registry = _registry()
    config = load_config(write_config(document, name="dask.yaml"), registry=registry)
    killed: dict[str, int] = {}
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_worker_mid_chunk, args=(markers, 2, killed, stop), daemon=True)
    killer.start()
    try:
        interrupted = run_production(config, progress=False, registry=registry)
    finally:
        stop.set()
        killer.join()

    assert killed, "no worker was killed: the test did not exercise the failure"
    # Each worker process builds its stage state once, not once per chunk.
    builders = [m.name.split(".")[1] for m in markers.glob("built-*")]
    assert len(builders) == len(set(builders)) and len(builders) <= 3, sorted(markers.glob("built-*"))
    assert not list(markers.glob("trimmed.*")), "workers run with MALLOC_TRIM_THRESHOLD_ set"
    starts = sorted(m.name for m in markers.glob(f"chunk-{killed['chunk']}.pid-*"))
    assert len(starts) >= 2, f"chunk {killed['chunk']} was not rerun after its worker died: {starts}"
    assert not (tmp_path / "dask" / ".muons.chunks").exists()
    assert interrupted["chunks"] == serial["chunks"] == 8
    assert interrupted["muons_out"] == serial["muons_out"] == 2000 * 3
    assert [f["entries"] for f in interrupted["files"]] == [f["entries"] for f in serial["files"]]
    assert _read(interrupted).equals(_read(serial))


def test_concurrent_writers_of_one_staged_chunk_leave_one_complete_copy(tmp_path):
    """Two processes staging the same chunk (a rerun while the first copy is still
    writing) each write their own temporary file: the final file is one whole copy."""
    path = tmp_path / "chunk-000003.bin"
    first, second = b"A" * 100_000, b"B" * 100_000

    def write_first(handle):
        handle.write(first[:50_000])
        _atomic_write_bytes(path, lambda other: other.write(second), durable=False)  # the rerun, meanwhile
        handle.write(first[50_000:])

    _atomic_write_bytes(path, write_first, durable=False)
    assert path.read_bytes() in (first, second)
    assert list(tmp_path.iterdir()) == [path]
