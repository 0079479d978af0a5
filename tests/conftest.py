"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from shipfastsim.components import ChunkContext
from shipfastsim.data import HOLDOUT_SAMPLE, SHIP_SAMPLE, TARGET_SAMPLE

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The full SHiP GAN sample, shipped in data/ (its holdout part is also `HOLDOUT_SAMPLE`).
SHARED_SAMPLE = SHIP_SAMPLE


@pytest.fixture(scope="session")
def target_sample() -> Path:
    """The 10k target-muon sample shipped in the repo."""
    return TARGET_SAMPLE


@pytest.fixture(scope="session")
def holdout_sample() -> Path:
    """The holdout part of the SHiP GAN sample shipped in the repo (4,908 muons and the
    id-0 padding row the SHiP file ends with)."""
    return HOLDOUT_SAMPLE


@pytest.fixture
def make_context():
    """Factory of a ChunkContext seeded with ``seed`` (chunk 0 by default)."""

    def make(seed: int = 1, chunk_index: int = 0, first_muon: int = 0, device: str = "cpu") -> ChunkContext:
        generator = torch.Generator(device=device).manual_seed(seed)
        return ChunkContext(chunk_index, first_muon, generator, torch.device(device))

    return make


@pytest.fixture
def write_config(tmp_path, target_sample):
    """Write a config (a dict, merged over a small valid default) to a YAML file."""

    def write(document: dict | None = None, name: str = "config.yaml", raw: str | None = None) -> Path:
        path = tmp_path / name
        if raw is not None:
            path.write_text(raw)
            return path
        base = {
            "version": 1,
            "run": {"events": 1000, "chunk_size": 300, "seed": 5,
                    "output": {"path": str(tmp_path / "out" / "muons.root")}},
            "stages": [
                {"generator": "fairship-file", "params": {"files": [str(target_sample)]}},
                {"augmenter": "phi-rotation", "params": {"copies": 3}},
            ],
        }
        path.write_text(yaml.safe_dump(document if document is not None else base))
        return path

    return write


#: Set by .ci/run: in CI everything is installed and every file is in the repository, so a
#: skipped test means something is missing, and it fails the run instead of hiding.  The
#: one exception: a test marked ``cuda`` that skips because the machine has no CUDA device
#: (CI machines have none; the skip says so in the report).
FAIL_ON_SKIP = "SHIPFASTSIM_FAIL_ON_SKIP"
NO_CUDA_DEVICE = "no CUDA device on this machine"


def pytest_configure(config):
    config.addinivalue_line("markers", f"cuda: needs a CUDA device; may skip with '{NO_CUDA_DEVICE}' in CI")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    reason = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ""
    allowed = item.get_closest_marker("cuda") is not None and NO_CUDA_DEVICE in str(reason)
    if report.skipped and os.environ.get(FAIL_ON_SKIP) and not hasattr(report, "wasxfail") and not allowed:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which {FAIL_ON_SKIP}=1 (CI) does not allow: {reason}"
    return report
