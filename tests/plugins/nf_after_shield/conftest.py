"""Fixtures: the TRY_2025 models and their shipped holdout sample, and a generator-stage runner.

The tests of this folder judge the plugin's mechanics on the TRY_2025 models
(``plugins/nf_after_shield/try2025/``), whose fidelity figures the physics docs give; the
default (TRY_2026) models are judged in ``tests/plugins/try2026``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shipfastsim.components import ChunkContext, Stage
from shipfastsim.configs import GEOMETRY_DIR, MODEL_SETS
from shipfastsim.plugins.nf_after_shield import COMPONENT
from shipfastsim.registry import get_registry

#: The TRY_2025 models, their geometry and held-out samples.
TRY2025_MODELS = Path(__file__).resolve().parents[3] / "plugins" / "nf_after_shield" / MODEL_SETS["TRY_2025"]
TRY2025_GEOMETRY = GEOMETRY_DIR / "ship_try2025.yaml"
AFTER_SHIELD_WEIGHTS = TRY2025_MODELS / "nf_after_shield.safetensors"
DECAY_VESSEL_WEIGHTS = TRY2025_MODELS / "nf_decay_vessel.safetensors"
HOLDOUT = TRY2025_MODELS / "holdout_shield_end.npz"
#: Parameters that run each generator of the plugin on the TRY_2025 models.
TRY2025_PARAMS = {
    "nf-after-shield": {"weights": str(AFTER_SHIELD_WEIGHTS), "p1_weights": str(DECAY_VESSEL_WEIGHTS),
                        "geometry": str(TRY2025_GEOMETRY)},
    "nf-decay-vessel": {"weights": str(DECAY_VESSEL_WEIGHTS), "geometry": str(TRY2025_GEOMETRY)},
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: these small networks gain nothing from two, and on a loaded
    two-core machine two spinning threads per process made them 20x slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def holdout() -> dict[str, np.ndarray]:
    """Held-out transported muons of the bundled model's data (never trained on): state
    [n, 6] (x, y, px, py, pz, charge), transport labels, ``random`` (unbiased P0 rows)."""
    with np.load(HOLDOUT, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture
def generate_nf():
    """Call the generator hook: ``generate_nf(n, seed, **params)`` -> MuonBatch (and the context);
    ``component`` another generator of this plugin (nf-decay-vessel); the TRY_2025 models
    unless ``params`` name others."""

    def generate(n: int, seed: int = 1, first: int = 0, component: str = COMPONENT.name, **params):
        spec = get_registry().get("generator", component).spec
        stage = Stage(kind="generator", component=component,
                      params=spec.defaults() | TRY2025_PARAMS[component] | params,
                      device=torch.device("cpu"))
        context = ChunkContext(chunk_index=0, first_muon=first, generator=torch.Generator().manual_seed(seed),
                               device=torch.device("cpu"))
        batch = get_registry().hook.shipfastsim_generate_muons(stage=stage, n_muons=n, context=context)
        return batch, context

    return generate
