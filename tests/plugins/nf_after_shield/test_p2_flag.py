"""nf-decay-vessel conditioned on the P2 flag: the drawn share of each region, every muon in
its drawn region, the regions being the flow restricted to them, reproducible; with a tiny
flow trained here on the shipped held-out P1 muons."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from shipfastsim.geometry import load_geometry
from shipfastsim.geometry.decay_vessel import DecayVessel, subset_labels
from shipfastsim.plugins.gan_target import run_chunked
from shipfastsim.plugins.nf_after_shield.data import TrainingData
from shipfastsim.plugins.nf_after_shield.decay_vessel import from_entrance_box, to_entrance_box
from shipfastsim.plugins.nf_after_shield.model import FlowConfig, save_flow
from shipfastsim.plugins.nf_after_shield.p2_flag import FlaggedNoiseToMuon, sample_flagged
from shipfastsim.plugins.nf_after_shield.train import TrainConfig, train_flow
from shipfastsim.validation.metrics import wasserstein1

from .conftest import TRY2025_GEOMETRY, TRY2025_MODELS

HOLDOUT = TRY2025_MODELS / "holdout_decay_vessel.npz"
VESSEL = DecayVessel.from_geometry(load_geometry(TRY2025_GEOMETRY))
#: Shares far from the transport's (18 % of either charge), so the flow's own share cannot pass.
SHARES = {"mu-": 0.08, "mu+": 0.6}


@pytest.fixture(scope="module")
def flagged(tmp_path_factory) -> tuple[FlaggedNoiseToMuon, str]:
    """A 2-transform autoregressive flow (hidden 10) conditioned on charge and P2 flag,
    300 steps on the 13,955 held-out P1 muons; its engine and its saved weights."""
    with np.load(HOLDOUT, allow_pickle=False) as f:
        state, label, z_plane = f["state"].astype(np.float64), f["label"], float(f["z_plane"])
    data = TrainingData(to_entrance_box(state, VESSEL, z_plane), label, len(label), 0.0, z_plane)
    config = TrainConfig(seed=3, steps=300, batch_size=512, subset_batch=0, lambdas=(0.0, 0.0), eval_every=100,
                         flow=FlowConfig(knots=24, hidden=10, layers=2, coupling="autoregressive-spline", contexts=2))
    flow = train_flow(data, config).flow
    path = tmp_path_factory.mktemp("p2flag") / "nf_decay_vessel.safetensors"
    save_flow(flow, path, {"training": asdict(config) | {"flow": None},
                           "data": {"p2_share_by_charge": SHARES, "p1_fraction": 1.2e-3,
                                    "shield_end_per_target_muon": 0.74}})
    return FlaggedNoiseToMuon(flow).eval(), str(path)


def _sample(engine: FlaggedNoiseToMuon, n: int, seed: int) -> torch.Tensor:
    return sample_flagged(engine, n, torch.Generator().manual_seed(seed), SHARES, VESSEL, torch.device("cpu"))


def _labels(rows: torch.Tensor) -> torch.Tensor:
    return VESSEL.labels(*(rows[:, j] for j in range(6)))


def test_each_charge_has_its_p2_share_and_every_muon_is_in_p1(flagged):
    engine, _ = flagged
    rows = _sample(engine, 20_000, seed=1)
    label, plus = _labels(rows), rows[:, 6] < 0
    assert torch.all(label >= 1) and torch.all(rows[:, 7] == 1.0)
    assert torch.all(rows[:, 2] == engine.flow.config.z_plane)
    assert float(torch.linalg.norm(rows[:, 3:6], dim=1).max()) <= 400.0
    share_plus = float(plus.double().mean())
    f = engine.flow.config.fraction_mu_plus
    assert abs(share_plus - f) < 4 * math.sqrt(f * (1 - f) / len(rows)), (share_plus, f)
    for name, sign_rows in (("mu+", plus), ("mu-", ~plus)):
        got, want = float((label[sign_rows] == 2).double().mean()), SHARES[name]
        assert abs(got - want) < 4 * math.sqrt(want * (1 - want) / int(sign_rows.sum())), (name, got, want)
    assert torch.equal(rows, _sample(engine, 20_000, seed=1))
    assert not torch.equal(rows, _sample(engine, 20_000, seed=2))


def test_a_region_is_the_flow_given_its_flag_restricted_to_it(flagged):
    """The mu+ P2 muons against the flow's own mu+ flag +1 muons that fall in P2 (kept by
    rejection, a different random stream), and likewise the P1-not-P2 muons with flag -1:
    each feature's W1/sigma against the same comparison with the other flag's muons."""
    engine, _ = flagged
    rows = _sample(engine, 40_000, seed=3)
    label, plus = _labels(rows), rows[:, 6] < 0
    torch.manual_seed(11)
    for flag, region in ((1.0, 2), (-1.0, 1)):
        mine = rows[plus & (label == region)][:, :6].numpy()
        def direct(flag: float, region: int = region) -> np.ndarray:
            noise = torch.cat([torch.randn(60_000, 5), torch.tensor([1.0, flag]).expand(60_000, 2)], 1)
            with torch.no_grad():
                out = run_chunked(engine, noise).double()
            out[:, 0], out[:, 1] = from_entrance_box(*(out[:, j] for j in (0, 1, 3, 4, 5)), VESSEL,
                                                     engine.flow.config.z_plane)
            return out[_labels(out) == region][:, :6].numpy()
        same, other = direct(flag), direct(-flag)
        w1_same = max(wasserstein1(same[:, j], mine[:, j]) / same[:, j].std() for j in (0, 1, 3, 4, 5))
        w1_other = max(wasserstein1(other[:, j], mine[:, j]) / other[:, j].std() for j in (0, 1, 3, 4, 5))
        assert w1_same < 0.03 and w1_other > 2 * w1_same, (region, w1_same, w1_other)


def test_the_generator_reads_the_shares_beside_the_weights(flagged, generate_nf):
    _, path = flagged
    batch, _ = generate_nf(10_000, seed=4, component="nf-decay-vessel", weights=path)
    label = subset_labels(batch, VESSEL)
    assert torch.all(label >= 1) and len(batch) == 10_000
    plus = batch.pdg_id < 0
    assert abs(float((label[plus] == 2).double().mean()) - SHARES["mu+"]) < 0.03
    assert abs(float((label[~plus] == 2).double().mean()) - SHARES["mu-"]) < 0.03
    assert json.loads(open(path.replace(".safetensors", ".json")).read())["architecture"]["contexts"] == 2


def test_a_drawn_p2_share_carries_exact_weights(flagged):
    """r = 0.5: half the muons of each charge in P2, weights s / r and (1 - s) / (1 - r) by
    hand, and the weighted P2 fraction back at s (within 4 standard errors); r = 1: P2 only,
    each of weight s."""
    engine, _ = flagged
    rows = sample_flagged(engine, 40_000, torch.Generator().manual_seed(5), SHARES, VESSEL, torch.device("cpu"), 0.5)
    label, plus = _labels(rows), rows[:, 6] < 0
    for name, sign_rows in (("mu+", plus), ("mu-", ~plus)):
        s, in_p2, w = SHARES[name], label[sign_rows] == 2, rows[sign_rows, 7]
        n = int(sign_rows.sum())
        assert abs(float(in_p2.double().mean()) - 0.5) < 4 * math.sqrt(0.25 / n)
        expected = torch.where(in_p2, _f64(s / 0.5), _f64((1 - s) / 0.5))
        torch.testing.assert_close(w, expected, rtol=1e-12, atol=0)
        weighted = float((w * in_p2).sum() / n)
        error = float((w * in_p2).std()) / math.sqrt(n)
        assert abs(weighted - s) < 4 * error, (name, weighted, s)
    only = sample_flagged(engine, 5_000, torch.Generator().manual_seed(6), SHARES, VESSEL, torch.device("cpu"), 1.0)
    assert torch.all(_labels(only) == 2)
    torch.testing.assert_close(only[:, 7], torch.where(only[:, 6] < 0, _f64(SHARES["mu+"]), _f64(SHARES["mu-"])),
                               rtol=1e-12, atol=0)


def _f64(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


@pytest.mark.parametrize(("share", "weights", "message"), [
    (1.5, None, "1.5 is not a probability"),
    (0.5, "contexts-1", "not conditioned on the P2 flag"),
])
def test_check_refuses_a_p2_share_it_cannot_honour(share, weights, message, flagged, tmp_path):
    from shipfastsim.plugins.nf_after_shield.decay_vessel import COMPONENT

    path = flagged[1]
    if weights == "contexts-1":
        path = str(save_flow(engine_flow_without_flag(), tmp_path / "plain.safetensors", {}))
    key, text = COMPONENT.check(COMPONENT.defaults() | {"p2_share": share, "weights": path}, {})
    assert key == "p2_share" and message in text
    assert COMPONENT.check(COMPONENT.defaults() | {"p2_share": 1.0, "weights": flagged[1]}, {}) is None


def engine_flow_without_flag():
    from shipfastsim.plugins.nf_after_shield.model import MuonFlow

    return MuonFlow(FlowConfig(layers=1, hidden=4, coupling="autoregressive-spline"))
