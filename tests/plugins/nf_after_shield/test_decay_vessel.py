"""nf-decay-vessel by inference on the bundled weights: the entrance-box coordinates by hand,
every muon in P1, fidelity on held-out transported P1 muons, and the per-spill normalisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from shipfastsim.components import ChunkContext, Stage
from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import load_geometry
from shipfastsim.geometry.decay_vessel import DecayVessel, subset_labels
from shipfastsim.plugins.nf_after_shield.decay_vessel import (
    BUNDLED_WEIGHTS,
    COMPONENT,
    HOLDOUT,
    from_entrance_box,
    to_entrance_box,
)
from shipfastsim.registry import get_registry
from shipfastsim.validation.metrics import wasserstein1
from shipfastsim.validation.two_sample import gbt_auc

VESSEL = DecayVessel.from_geometry(load_geometry(GEOMETRY_DIR / "ship_try2025.yaml"))
Z_PLANE = 3148.66  # cm, shield_end of ship_try2025.yaml
NAME = COMPONENT.name


@pytest.fixture(scope="module")
def holdout() -> dict[str, np.ndarray]:
    with np.load(HOLDOUT, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_entrance_box_by_hand():
    """x_e = x + px/pz (z_entrance - z), u = atanh(x_e / half-width), and back."""
    x, y, px, py, pz = 10.0, -20.0, 0.5, -1.0, 50.0
    dz = 3312.0 - Z_PLANE  # the vessel entrance of the geometry YAML
    assert VESSEL.z_entrance == 3312.0 and (VESSEL.entrance_half_x, VESSEL.entrance_half_y) == (50.0, 135.0)
    u = to_entrance_box(np.array([[x, y, px, py, pz, 1.0]]), VESSEL, Z_PLANE)[0]
    assert u[0] == pytest.approx(math.atanh((10.0 + 0.01 * dz) / 50.0), rel=1e-12)
    assert u[1] == pytest.approx(math.atanh((-20.0 - 0.02 * dz) / 135.0), rel=1e-12)
    assert list(u[2:]) == [px, py, pz, 1.0]
    back = from_entrance_box(*(torch.tensor([v], dtype=torch.float64) for v in (u[0], u[1], px, py, pz)),
                             VESSEL, Z_PLANE)
    assert float(back[0]) == pytest.approx(x, rel=1e-7) and float(back[1]) == pytest.approx(y, rel=1e-7)


def test_every_muon_enters_the_vessel(generate_nf):
    batch, _ = generate_nf(20_000, seed=4, component=NAME)
    assert len(batch) == 20_000 and torch.all(batch.z == Z_PLANE) and torch.all(batch.weight == 1.0)
    assert torch.all(subset_labels(batch, VESSEL) >= 1)
    assert float(batch.p.max()) <= 400.0  # the flow's tail beyond the beam momentum is redrawn
    again, _ = generate_nf(20_000, seed=4, component=NAME)
    assert batch.equals(again)


@pytest.fixture(scope="module")
def generated() -> tuple[np.ndarray, np.ndarray]:
    """40k muons of the bundled model (seed 8): rows (x, y, px, py, pz, charge) and subset labels."""
    stage = Stage(kind="generator", component=NAME, params=COMPONENT.defaults(), device=torch.device("cpu"))
    context = ChunkContext(chunk_index=0, first_muon=0, generator=torch.Generator().manual_seed(8),
                           device=torch.device("cpu"))
    batch = get_registry().hook.shipfastsim_generate_muons(stage=stage, n_muons=40_000, context=context)
    rows = np.stack([batch.x, batch.y, batch.px, batch.py, batch.pz, -torch.sign(batch.pdg_id.double())], 1)
    return rows.astype(np.float64), subset_labels(batch, VESSEL).numpy()


def test_fidelity_on_held_out_transported_p1_muons(generated, holdout):
    """Against the 13,955 P1 muons of the four transport runs' holdouts (never trained on):
    measured AUC 0.539 (the same test between two samples of the model: 0.499) and W1/sigma
    x 0.010, y 0.011, px 0.017, py 0.027, pz 0.006, charge 0.007 (against 53,375 P1 muons
    of two further runs, not committed: AUC 0.563); the bundled nf-after-shield's P1
    muons: AUC 0.67-0.77, W1/sigma y 0.22, px 0.50, pz 0.38."""
    truth, (model, _) = holdout["state"].astype(np.float64), generated
    limits = {"x": 0.02, "y": 0.02, "px": 0.03, "py": 0.04, "pz": 0.015, "charge": 0.015}
    for j, (name, limit) in enumerate(limits.items()):
        w1 = wasserstein1(truth[:, j], model[:, j]) / truth[:, j].std()
        assert w1 < limit, (name, w1)
    auc = gbt_auc(truth, model, seed=1)
    assert auc < 0.55, auc


def test_p2_share_and_fidelity(generated, holdout):
    """P2 is not imposed; its share of the P1 muons matches the transport's (measured 18.76 %
    against 18.19 +- 0.33 %), and its muons stay close to the 2,538 held-out P2 muons
    (measured AUC 0.576, W1/sigma at most 0.11 (pz): not at the 0.55 gate)."""
    (model, label), truth_label = generated, holdout["label"]
    share, truth_share = float((label >= 2).mean()), float((truth_label >= 2).mean())
    error = math.sqrt(share * (1 - share) / len(label) + truth_share * (1 - truth_share) / len(truth_label))
    assert abs(share - truth_share) < 3.0 * error, (share, truth_share)
    auc = gbt_auc(holdout["state"].astype(np.float64)[truth_label >= 2], model[label >= 2], seed=1)
    assert auc < 0.60, auc


def test_normalisation_is_the_transported_p1_fraction(holdout):
    """The P1 fraction behind the weights (training transport) agrees with the holdout's,
    an independent sample; the rate is the shield-end rate times it."""
    data = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())["data"]
    p1 = data["p1_fraction"]
    n, k = int(holdout["holdout_rows"]), len(holdout["label"])
    assert abs(k / n - p1) < 3.0 * math.sqrt(p1 / n), (k / n, p1)
    norm = COMPONENT.normalisation(COMPONENT.defaults() | {"shield_end_muons_per_pot": 1.125e-7})
    assert norm.muons_per_pot == pytest.approx(1.125e-7 * data["p1_rows"] / data["rows_at_shield_end"], rel=1e-12)
