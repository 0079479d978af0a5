"""Bounded memory: a run's peak RSS does not grow with the number of muons.

One fresh interpreter runs a 1-chunk production and then a 20-chunk one of the same
chain (1e5 muons per chunk); its peak RSS after each (``ru_maxrss``) is printed.
Whole-run arrays would add at least 60 bytes per muon (15 float32 branches):
110 MiB for the 2e6 muons of the second run; chunks streamed to disk add nothing
but allocator noise.  Larger sizes: ``benchmarks/bench_memory.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, resource, sys, tempfile, warnings
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bench_memory import write_config
from shipfastsim.config import load_config
from shipfastsim.runner import run_production
warnings.simplefilter("ignore")
peaks = []
for muons in (100_000, 2_000_000):
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_production(load_config(write_config(Path(tmp), muons, 100_000, None)), progress=False)
        assert summary["muons_out"] == muons, summary["muons_out"]
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(peaks))
"""


def test_peak_memory_does_not_grow_with_the_run(tmp_path):
    from tests.conftest import REPO_ROOT

    result = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO_ROOT / "benchmarks")], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    small, large = json.loads(result.stdout.splitlines()[-1])
    whole_run_arrays = 2_000_000 * 60 / 2**20
    assert large - small < 0.3 * whole_run_arrays, f"peak RSS grew from {small:.0f} to {large:.0f} MiB"
