"""Shared by the target-generator tests: seeded generation through the registry hook and the
fidelity report of a bundled generator against the holdout of the 50k SHiP sample (data/)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from shipfastsim.components import ChunkContext, Stage
from shipfastsim.data import SHIP_SAMPLE
from shipfastsim.registry import get_registry

#: The whole SHiP GAN sample, shipped in data/ (the split picks the train and holdout rows).
SHARED = SHIP_SAMPLE
#: Generated muons per fidelity report: many, so the holdout's ~5k muons dominate the W1 noise.
N_GENERATED = 100_000


def generate_with(component: str, n: int, seed: int = 1, first: int = 0, **params):
    """``n`` muons of ``component`` from a seeded chunk context, as a production run makes them."""
    defaults = get_registry().get("generator", component).spec.defaults()
    stage = Stage(kind="generator", component=component, params=defaults | params, device=torch.device("cpu"))
    context = ChunkContext(chunk_index=0, first_muon=first, generator=torch.Generator().manual_seed(seed),
                           device=torch.device("cpu"))
    return get_registry().hook.shipfastsim_generate_muons(stage=stage, n_muons=n, context=context)


@dataclass
class HoldoutReport:
    holdout: object  # MuonBatch
    generated: object  # MuonBatch
    metrics: object  # ValidationMetrics
    memorisation: object  # MemorisationCheck


@functools.cache
def holdout_report(component: str) -> HoldoutReport:
    """`compare` of the bundled ``component`` (N_GENERATED muons) against the holdout, and the
    memorisation check (physics features, distances to the train split, holdout-sized samples)."""
    from shipfastsim.plugins.gan_target.data import load_muons
    from shipfastsim.validation.memorisation import memorisation_check
    from shipfastsim.validation.metrics import PHYSICS_FEATURES, compare, feature_arrays
    from shipfastsim.validation.split import split_mask

    muons, _ = load_muons([SHARED])
    holdout = muons.select(torch.as_tensor(split_mask(len(muons), "holdout")))
    train = muons.select(torch.as_tensor(split_mask(len(muons), "train")))
    generated = generate_with(component, N_GENERATED, seed=11)
    metrics = compare(holdout, generated, seed=0)
    physics = [feature_arrays(batch, PHYSICS_FEATURES)[0] for batch in (train, holdout, generated)]
    memorisation = memorisation_check(physics[0], physics[1], physics[2][: len(physics[1])])
    assert np.isfinite(metrics.gbt_auc_physics)
    return HoldoutReport(holdout, generated, metrics, memorisation)
