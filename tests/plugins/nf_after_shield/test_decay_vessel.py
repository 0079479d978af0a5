"""nf-decay-vessel by inference on the TRY_2025 weights: the entrance-box coordinates by hand,
every muon in P1, fidelity on held-out transported P1 muons, and the per-spill normalisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from shipfastsim.components import ChunkContext, Stage
from shipfastsim.geometry import load_geometry
from shipfastsim.geometry.decay_vessel import DecayVessel, subset_labels
from shipfastsim.plugins.nf_after_shield.decay_vessel import COMPONENT, from_entrance_box, to_entrance_box
from shipfastsim.registry import get_registry
from shipfastsim.validation.metrics import wasserstein1
from shipfastsim.validation.two_sample import gbt_auc

from .conftest import DECAY_VESSEL_WEIGHTS as BUNDLED_WEIGHTS
from .conftest import TRY2025_GEOMETRY, TRY2025_MODELS, TRY2025_PARAMS

HOLDOUT = TRY2025_MODELS / "holdout_decay_vessel.npz"
INDEPENDENT = TRY2025_MODELS / "independent_decay_vessel.npz"
VESSEL = DecayVessel.from_geometry(load_geometry(TRY2025_GEOMETRY))
Z_PLANE = 3148.66  # cm, shield_end of ship_try2025.yaml
NAME = COMPONENT.name


def _load(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def holdout() -> dict[str, np.ndarray]:
    """The P1 muons of the holdout splits of the four training runs (13,955; 2,538 P2)."""
    return _load(HOLDOUT)


@pytest.fixture(scope="module", params=["holdout", "independent"])
def truth(request, holdout) -> dict[str, np.ndarray]:
    """Each truth in turn: the holdout, and every P1 muon of two further transport runs
    the model never saw (data seeds 16 and 17: 53,375 P1, 9,736 P2, out of 44,525,933
    muons at the shield end), where 4x the statistics resolves more."""
    return holdout if request.param == "holdout" else _load(INDEPENDENT)


def test_entrance_box_by_hand():
    """x_e = x + px/pz (z_entrance - z), u = atanh(x_e / half-width), the half-widths shrunk by
    4e-6 (float32 margin), and back."""
    x, y, px, py, pz = 10.0, -20.0, 0.5, -1.0, 50.0
    dz = 3312.0 - Z_PLANE  # the vessel entrance of the geometry YAML
    assert VESSEL.z_entrance == 3312.0 and (VESSEL.entrance_half_x, VESSEL.entrance_half_y) == (50.0, 135.0)
    u = to_entrance_box(np.array([[x, y, px, py, pz, 1.0]]), VESSEL, Z_PLANE)[0]
    assert u[0] == pytest.approx(math.atanh((10.0 + 0.01 * dz) / (50.0 * (1 - 4e-6))), rel=1e-12)
    assert u[1] == pytest.approx(math.atanh((-20.0 - 0.02 * dz) / (135.0 * (1 - 4e-6))), rel=1e-12)
    assert list(u[2:]) == [px, py, pz, 1.0]
    back = from_entrance_box(*(torch.tensor([v], dtype=torch.float64) for v in (u[0], u[1], px, py, pz)),
                             VESSEL, Z_PLANE)
    assert float(back[0]) == pytest.approx(x, rel=1e-12) and float(back[1]) == pytest.approx(y, rel=1e-12)


def test_every_muon_enters_the_vessel(generate_nf):
    batch, _ = generate_nf(20_000, seed=4, component=NAME)
    assert len(batch) == 20_000 and torch.all(batch.z == Z_PLANE) and torch.all(batch.weight == 1.0)
    assert torch.all(subset_labels(batch, VESSEL) >= 1)
    assert float(batch.p.max()) <= 400.0  # the flow's tail beyond the beam momentum is redrawn
    again, _ = generate_nf(20_000, seed=4, component=NAME)
    assert batch.equals(again)


@pytest.fixture(scope="module")
def generated() -> tuple[np.ndarray, np.ndarray]:
    """60k muons of the TRY_2025 model (seed 8): rows (x, y, px, py, pz, charge) and subset labels."""
    stage = Stage(kind="generator", component=NAME, params=COMPONENT.defaults() | TRY2025_PARAMS[NAME],
                  device=torch.device("cpu"))
    context = ChunkContext(chunk_index=0, first_muon=0, generator=torch.Generator().manual_seed(8),
                           device=torch.device("cpu"))
    batch = get_registry().hook.shipfastsim_generate_muons(stage=stage, n_muons=60_000, context=context)
    rows = np.stack([batch.x, batch.y, batch.px, batch.py, batch.pz, -torch.sign(batch.pdg_id.double())], 1)
    return rows.astype(np.float64), subset_labels(batch, VESSEL).numpy()


def _w1_over_sigma(truth: np.ndarray, model: np.ndarray) -> dict[str, float]:
    return {name: wasserstein1(truth[:, j], model[:, j]) / truth[:, j].std()
            for j, name in enumerate(("x", "y", "px", "py", "pz", "charge"))}


def test_fidelity_on_transported_p1_muons_it_never_saw(generated, truth):
    """The P1 gate, W1/sigma < 0.05 per feature and boosted-trees AUC < 0.55, against each
    truth.  Measured: AUC 0.506 on the holdout, 0.519 on the independent runs (0.499-0.513 /
    0.512-0.519 over generation seeds 8-11; the previous bundled flow, hidden 32 on the
    training rows alone: means 0.511 / 0.520; the affine one: 0.536 / 0.563); W1/sigma
    holdout / independent x 0.016 / 0.014, y 0.005 / 0.015, px 0.011 / 0.009, py 0.015 /
    0.011, pz 0.008 / 0.005, charge 0.011 / 0.001.  The limits below are tighter than the
    gate, to catch a regression (pz x 1.03 gives 0.016 on the holdout)."""
    truth_rows, (model, _) = truth["state"].astype(np.float64), generated
    limits = {"x": 0.025, "y": 0.02, "px": 0.03, "py": 0.03, "pz": 0.012, "charge": 0.015}
    w1 = _w1_over_sigma(truth_rows, model)
    assert all(w1[name] < limit for name, limit in limits.items()), w1
    auc = gbt_auc(truth_rows, model, seed=1)
    assert auc < 0.55, auc


def test_p2_share_and_fidelity(generated, truth):
    """P2 is drawn with the training transport's share of each charge (the flow is
    conditioned on the P2 flag), which matches each truth's (measured 18.28 % against
    18.19 +- 0.33 % and 18.24 +- 0.17 %), and its muons meet the gate on the 9,736
    independent P2 muons: W1/sigma at most 0.034 (charge), AUC 0.542 (over generation seeds
    8-11: W1/sigma at most 0.042, AUC 0.535-0.543; the previous bundled flow 0.547-0.558).
    On the 2,538 held-out P2 muons the AUC is 0.520 (0.510-0.533) but W1/sigma of y 0.059
    (0.057-0.068), where the holdout's own W1/sigma of y against the independent truth is
    0.047: there the W1 bound is a regression bound."""
    (model, label), truth_label = generated, truth["label"]
    share, truth_share = float((label >= 2).mean()), float((truth_label >= 2).mean())
    error = math.sqrt(share * (1 - share) / len(label) + truth_share * (1 - truth_share) / len(truth_label))
    assert abs(share - truth_share) < 3.0 * error, (share, truth_share)
    truth_p2 = truth["state"].astype(np.float64)[truth_label >= 2]
    w1 = _w1_over_sigma(truth_p2, model[label >= 2])
    assert max(w1.values()) < (0.05 if len(truth_p2) > 5000 else 0.065), w1
    auc = gbt_auc(truth_p2, model[label >= 2], seed=1)
    assert auc < 0.55, auc


def _at_entrance(rows: np.ndarray) -> np.ndarray:
    """(x_e, y_e [cm], tx, ty, log pz, charge): rows (x, y, px, py, pz, charge) at the shield
    end carried straight to the vessel entrance."""
    tx, ty = rows[:, 2] / rows[:, 4], rows[:, 3] / rows[:, 4]
    dz = VESSEL.z_entrance - Z_PLANE
    return np.stack([rows[:, 0] + tx * dz, rows[:, 1] + ty * dz, tx, ty, np.log(rows[:, 4]), rows[:, 5]], 1)


def test_fidelity_in_the_features_at_the_vessel_entrance(generated):
    """The stronger form of the two-sample test: the same trees on the features at the
    entrance, against the independent runs.  Measured at seed 8: P1 AUC 0.525 (seeds 8-11:
    0.520-0.525; the previous bundled flow 0.531-0.539), P2 0.549 (0.549-0.556, mean 0.553;
    the previous 0.559-0.569, mean 0.565).  P1 meets the gate here too, P2 not at every
    seed (docs/physics/nf-decay-vessel.md): its bound is a regression bound."""
    independent = _load(INDEPENDENT)
    (model, label), truth, truth_label = generated, independent["state"].astype(np.float64), independent["label"]
    assert gbt_auc(_at_entrance(truth), _at_entrance(model), seed=1) < 0.535
    assert gbt_auc(_at_entrance(truth[truth_label >= 2]), _at_entrance(model[label >= 2]), seed=1) < 0.56


def test_p2_only_carries_the_transported_share_as_weight(generate_nf):
    """``p2_share: 1`` (as configs/decay_vessel_p2.yaml with the default models): every muon in
    P2, each weighing the training transport's P2 share of its charge (model JSON), so the
    weights sum to the P2 muons among the P1 muons the normalisation stands for."""
    shares = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())["data"]["p2_share_by_charge"]
    batch, _ = generate_nf(20_000, seed=6, component=NAME, p2_share=1.0)
    assert torch.all(subset_labels(batch, VESSEL) == 2)
    expected = torch.where(batch.pdg_id < 0, torch.tensor(shares["mu+"], dtype=torch.float64),
                           torch.tensor(shares["mu-"], dtype=torch.float64))
    torch.testing.assert_close(batch.weight, expected, rtol=1e-12, atol=0)


def test_normalisation_is_the_transported_p1_fraction(holdout):
    """The P1 fraction behind the weights (training transport) agrees with the holdout's
    and the independent runs' (0.1199 % of 44.5 M muons against 0.1194 %); the rate is the
    shield-end rate times it."""
    data = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())["data"]
    p1 = data["p1_fraction"]
    independent = _load(INDEPENDENT)
    for n, k in ((int(holdout["holdout_rows"]), len(holdout["label"])),
                 (int(independent["rows_at_shield_end"]), len(independent["label"]))):
        assert abs(k / n - p1) < 3.0 * math.sqrt(p1 / n), (k / n, p1)
    norm = COMPONENT.normalisation(COMPONENT.defaults() | TRY2025_PARAMS[NAME] | {"shield_end_muons_per_pot": 1.125e-7})
    assert norm.muons_per_pot == pytest.approx(1.125e-7 * data["p1_rows"] / data["rows_at_shield_end"], rel=1e-12)


def test_transported_p1_muons_are_mirror_symmetric_in_y():
    """The training option ``mirror_y`` rests on this (docs/physics/nf-decay-vessel.md): the boosted trees cannot tell
    one half of the independent P1 muons from the other half mirrored in y (y, py -> -y, -py),
    though the cavern floor breaks the symmetry of the geometry; a wrong mirror (y alone) they
    tell apart at once."""
    independent = _load(INDEPENDENT)
    state = independent["state"].astype(np.float64)
    order = np.random.default_rng(0).permutation(len(state))
    first, second = state[order[: len(state) // 2]], state[order[len(state) // 2:]]
    mirrored, wrong = second.copy(), second.copy()
    mirrored[:, [1, 3]] *= -1.0
    wrong[:, 1] *= -1.0
    auc, auc_wrong = gbt_auc(first, mirrored, seed=1), gbt_auc(first, wrong, seed=1)
    print(f"P1 halves, one mirrored in y: AUC {auc:.4f}; y alone negated: {auc_wrong:.4f}")
    assert auc < 0.51 and auc_wrong > 0.6
