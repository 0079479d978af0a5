"""nf-after-shield by inference on the TRY_2025 weights: contract, exact weights, enrichment, run report, filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from shipfastsim.config import ConfigError, load_config
from shipfastsim.geometry import load_geometry
from shipfastsim.geometry.decay_vessel import DecayVessel, subset_labels
from shipfastsim.plugins.nf_after_shield import DANGEROUS_SIGMAS, format_report
from shipfastsim.runner import run_production
from shipfastsim.units import MUON_PDG_IDS
from shipfastsim.validation.two_sample import gbt_auc

from .conftest import AFTER_SHIELD_WEIGHTS, TRY2025_GEOMETRY, TRY2025_MODELS, TRY2025_PARAMS

VESSEL = DecayVessel.from_geometry(load_geometry(TRY2025_GEOMETRY))
#: P1 fraction of nf-decay-vessel's training transport: 93,116 P1 muons of 77,973,876 at the
#: shield end (nf_decay_vessel.json, written by the recipe).
P1_FRACTION = 93_116 / 77_973_876


def test_contract(generate_nf):
    batch, context = generate_nf(3000, first=100)
    assert len(batch) == 3000 and batch.x.dtype == torch.float64
    assert set(batch.pdg_id.unique().tolist()) <= set(MUON_PDG_IDS)
    assert torch.equal(batch.event_id, torch.arange(100, 3100))
    assert torch.all(batch.z == 3148.66) and torch.all(batch.pz > 0)
    assert torch.all(batch.weight == 1.0)  # latent sigma 1: the inclusive model, unit weights
    assert context.counters["nf-after-shield:P0:n"] == 3000
    again, _ = generate_nf(3000, first=100)
    assert torch.equal(batch.x, again.x) and torch.equal(batch.pdg_id, again.pdg_id)  # seeded


def test_weighted_totals_equal_the_inclusive_model(generate_nf):
    """Dangerous mode at latent sigma 1.3: the weighted number of P1 muons and the weighted mean pz
    per generated muon equal the inclusive model's within statistical errors."""
    n = 150_000
    inclusive, _ = generate_nf(n, seed=11)
    enriched, _ = generate_nf(n, seed=12, latent_sigma=DANGEROUS_SIGMAS[0])
    p1_inc = (subset_labels(inclusive, VESSEL) >= 1).double()
    p1_enr = (subset_labels(enriched, VESSEL) >= 1).double()
    w = enriched.weight

    def agree(a: torch.Tensor, b: torch.Tensor) -> float:  # pull of the difference of two means
        return float((a.mean() - b.mean()) / torch.sqrt(a.var() / len(a) + b.var() / len(b)))

    assert abs(agree(w * p1_enr, p1_inc)) < 4.0
    assert abs(agree(w * enriched.pz, inclusive.pz)) < 4.0
    assert abs(agree(w, torch.ones_like(w))) < 4.0  # E[w] = 1
    enrichment = float(p1_enr.mean() / p1_inc.mean())
    assert enrichment > 3.0, enrichment  # measured 6.0 on 2e6 muons: P1 sits in the latent tails


def test_run_report_and_subset_filter(tmp_path):
    config = {"version": 1,
              "run": {"events": 40000, "chunk_size": 20000, "seed": 3, "device": "cpu",
                      "output": {"path": str(tmp_path / "dangerous.root"), "format": "fairship-root"}},
              "stages": [{"generator": "nf-after-shield",
                          "params": {"latent_sigma": DANGEROUS_SIGMAS[0]} | TRY2025_PARAMS["nf-after-shield"]},
                         {"filter": "decay-vessel-subset",
                          "params": {"subset": "P1", "geometry": str(TRY2025_GEOMETRY)}}]}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = run_production(load_config(path), progress=False)
    counters = summary["counters"]
    assert counters["nf-after-shield:P0:n"] == 40000
    report = format_report(counters)
    assert "enrichment" in report and "ESS" in report
    assert any("nf-after-shield" in text for text in summary.get("reports", []))
    from shipfastsim.adapters.fairship import read_ntuple

    kept, _ = read_ntuple(tmp_path / "dangerous.root")
    assert len(kept) == counters["nf-after-shield:P1:n"] > 0
    # every written muon enters the vessel (relabelled from the file: FairShip frame round trip)
    assert torch.all(subset_labels(kept, VESSEL) >= 1)


def test_bad_latent_sigma_is_a_config_error(tmp_path):
    config = {"version": 1, "run": {"events": 10, "output": {"path": str(tmp_path / "x.root")}},
              "stages": [{"generator": "nf-after-shield", "params": {"latent_sigma": 0.0}}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="latent_sigma"):
        load_config(path)


@pytest.mark.parametrize(("name", "events"), [("after_shield_nf.yaml", 4_200_000),
                                              ("try2025_after_shield_nf.yaml", 4_500_000),
                                              ("after_shield_latent_sigma.yaml", 500_000),
                                              ("after_shield_dangerous.yaml", 500_000)])
def test_production_configs_validate(name, events):
    from shipfastsim.configs import CONFIG_DIR

    config = load_config(CONFIG_DIR / name)
    assert config.events == events
    assert config.stages[0].component == "nf-after-shield"


def _physics(batch) -> np.ndarray:
    """(x, y, px, py, pz, charge) [n, 6] of a batch, the fidelity columns."""
    return torch.stack([batch.x, batch.y, batch.px, batch.py, batch.pz, batch.charge], 1).numpy()


def _inside_envelope(state: np.ndarray) -> np.ndarray:
    """Rows inside the transported muons' range at the shield end (11 M rows: |x|, |y| < 970 cm,
    pT < 18 GeV/c, pz < 1.8e4 GeV/c), with margin: |x|, |y| <= 1200 cm, pT <= 30, pz <= 2e4 GeV/c."""
    finite = np.isfinite(state).all(1)
    safe = np.where(finite[:, None], state, 0.0)
    return (finite & (np.abs(safe[:, 0]) <= 1200) & (np.abs(safe[:, 1]) <= 1200)
            & (np.hypot(safe[:, 2], safe[:, 3]) <= 30) & (safe[:, 4] <= 2e4))


def test_fidelity_of_the_bundled_model_on_the_holdout(holdout, generate_nf):
    """P0, the inclusive model (the plugin at latent sigma 1) against the 60,000 random holdout rows:
    W1/sigma < 0.05 per feature and the GBT two-sample AUC < 0.55, the issue's gates (measured:
    W1/sigma <= 0.018, AUC 0.529 here; 0.526 on 74,733 holdout rows, the floor 0.50).  The flow's
    latent tails make rare muons far outside the transported range (with the 24-knot maps one
    with px ~ 1e31 GeV/c, which alone set W1 of px to 1e31): their rate is bounded, and the
    metrics use the rest."""
    from shipfastsim.plugins.nf_after_shield.validate import FEATURES, fidelity

    truth = holdout["state"][holdout["random"]].astype(np.float64)
    batch, _ = generate_nf(2 * len(truth), seed=21)
    sample = _physics(batch)
    inside = _inside_envelope(sample)
    assert _inside_envelope(truth).all()
    assert (~inside).sum() <= 1e-4 * len(sample), (~inside).sum()  # 7 of 120,000 before the redraw, now 0
    row = fidelity(truth, sample[inside], None, "P0", "sigma 1")
    print(f"outside the envelope: {(~inside).sum()} of {len(sample)};",
          {f: round(row.w1_over_sigma[f], 4) for f in FEATURES}, "AUC", round(row.gbt_auc, 4))
    assert max(row.w1_over_sigma.values()) < 0.05, row.w1_over_sigma
    assert row.gbt_auc < 0.55, row.gbt_auc


def _inside_training_range(state: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Rows (x, y, px, py, pz) inside the flow's training sample's range: its Gaussianising
    maps' outer knots ``knots`` [5, k] (x, y, px/pz, py/pz, log pz) sit at the sample's min and max."""
    with np.errstate(divide="ignore", invalid="ignore"):
        features = np.stack([state[:, 0], state[:, 1], state[:, 2] / state[:, 4], state[:, 3] / state[:, 4],
                             np.log(state[:, 4])], 1)
        return (state[:, 4] > 0) & ((features >= knots[:, :1].T) & (features <= knots[:, -1:].T)).all(1)


def _engine_rows(n: int, seed: int) -> np.ndarray:
    """The TRY_2025 flow's CPU engine on the noise of a chunk of ``seed``: (x, y, px, py, pz) [n, 5]."""
    from shipfastsim.plugins.nf_after_shield.fast import cpu_engine
    from shipfastsim.plugins.nf_after_shield.model import load_flow
    from shipfastsim.plugins.nf_after_shield.sampling import draw_noise, run_engine

    raw = run_engine(cpu_engine(load_flow(AFTER_SHIELD_WEIGHTS)), draw_noise(n, torch.Generator().manual_seed(seed)))
    return raw[:, [0, 1, 3, 4, 5]].double().numpy()


@pytest.mark.parametrize("p1_source", ["inclusive", "nf-decay-vessel"])
def test_no_muon_outside_the_transported_range(generate_nf, p1_source):
    """The flow's latent tails reach beyond the range of its training sample (measured without
    the redraw: 176 of 10^6 muons of the bundled model outside it): those muons are redrawn,
    so none is written, and (inclusive model) every
    other muon is the engine's own, untouched."""
    from shipfastsim.plugins.nf_after_shield.model import load_flow
    n = 400_000
    batch, _ = generate_nf(n, seed=41, p1_source=p1_source)
    state = _physics(batch).astype(np.float64)
    knots = load_flow(AFTER_SHIELD_WEIGHTS).knots_f.double().numpy()
    assert len(state) == n and np.isfinite(state).all() and _inside_training_range(state, knots).all()
    if p1_source == "inclusive":
        raw = _engine_rows(n, 41)
        kept = _inside_training_range(raw, knots)
        assert 20 < (~kept).sum() < 200, (~kept).sum()  # the rows redrawn (measured: 176 in 10^6)
        assert np.array_equal(state[kept, :5], raw[kept])


#: Bounds of the P1 test: the measured figures (x 0.043, y 0.210, px 0.435, py 0.275, pz 0.331,
#: charge 0.001; AUC 0.716: far from the issue's gates, 0.05 and 0.55) plus about their
#: statistical spread (the floor, holdout against training P1 muons: W1/sigma 0.02-0.34, the
#: heavy pz tail and the clustered phi copies; AUC 0.52).
P1_W1_BOUNDS = {"x": 0.07, "y": 0.26, "px": 0.50, "py": 0.33, "pz": 0.40, "charge": 0.03}
P1_AUC_BOUND = 0.74


def test_decay_vessel_muons_of_the_bundled_model_against_the_holdout(holdout, generate_nf):
    """P1 (the muons entering the decay-vessel aperture) from the dangerous mode (latent sigma 1.3,
    exact weights) against every P1 muon of the holdout (2,006 of 1,672,359 transported muons):
    the weighted P1 fraction equals the transport's within 3 standard deviations (measured: 1.02x,
    0.5), and W1/sigma per feature and the GBT AUC stay within the measured figures' statistical
    spread (docs/physics/nf-after-shield.md: P1 is still far from the gates)."""
    from shipfastsim.plugins.nf_after_shield.validate import FEATURES, fidelity

    truth = holdout["state"][holdout["label"] >= 1].astype(np.float64)
    rows = int(holdout["holdout_rows"])
    n = 600_000
    batch, _ = generate_nf(n, seed=23, latent_sigma=DANGEROUS_SIGMAS[0])
    member = (subset_labels(batch, VESSEL) >= 1).numpy()
    w = batch.weight.numpy()[member]
    fraction, error = w.sum() / n, np.sqrt((w * w).sum()) / n
    pull = (fraction - len(truth) / rows) / np.hypot(error, np.sqrt(len(truth)) / rows)
    row = fidelity(truth, _physics(batch)[member], w, "P1", f"sigma {DANGEROUS_SIGMAS[0]} weighted")
    print(f"P1 fraction: model {fraction:.3e} +- {error:.1e}, holdout {len(truth) / rows:.3e} (pull {pull:.2f});",
          {f: round(row.w1_over_sigma[f], 4) for f in FEATURES}, "AUC", round(row.gbt_auc, 4))
    assert abs(pull) < 3.0
    for feature, bound in P1_W1_BOUNDS.items():
        assert row.w1_over_sigma[feature] < bound, (feature, row.w1_over_sigma)
    assert row.gbt_auc < P1_AUC_BOUND, row.gbt_auc


def test_export_refuses_spline_flows(tmp_path):
    # Spline couplings gather per-row bin parameters, which the ONNX/SOFIE path does not take.
    from shipfastsim.plugins.nf_after_shield import shipfastsim_export_description
    from shipfastsim.plugins.nf_after_shield.model import FlowConfig, MuonFlow, save_flow

    path = save_flow(MuonFlow(FlowConfig(coupling="autoregressive-spline", layers=2, hidden=8)),
                     tmp_path / "flow.safetensors", {})
    with pytest.raises(ValueError, match="affine couplings; this one has autoregressive-spline"):
        shipfastsim_export_description(component="nf-after-shield", params={"weights": str(path)})
    # the composite model is not this flow: exporting the flow alone in its name would be wrong
    with pytest.raises(ValueError, match="composite model .* has no ONNX graph"):
        shipfastsim_export_description(component="nf-after-shield",
                                       params={"p1_source": "nf-decay-vessel", "latent_sigma": 0.2})


@pytest.mark.parametrize(("params", "message"), [
    ({"latent_sigma": 0.2, "p1_share": 0.5, "p1_source": "nf-decay-vessel"}, "p1_share.*not both"),
    ({"p1_share": 0.5}, "p1_share.*needs p1_source: nf-decay-vessel"),
    ({"p1_share": 1.5, "p1_source": "nf-decay-vessel"}, "p1_share.*not a probability"),
])
def test_p1_source_and_share_errors(tmp_path, params, message):
    config = {"version": 1, "run": {"events": 10, "output": {"path": str(tmp_path / "x.root")}},
              "stages": [{"generator": "nf-after-shield", "params": params}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_decay_vessel_muons_from_the_specialist(generate_nf):
    """``p1_source: nf-decay-vessel``: a muon the inclusive flow puts outside P1 is kept or
    replaced by a specialist's P1 muon, a muon it puts in P1 is redrawn; the P1 fraction is
    the specialist's training transport's (0.1194 %; measured 0.1209 % of 5e6), and the P1
    muons pass the P1 gate against the 53,375 independent P1 muons (measured AUC 0.501
    with 6,044 generated; the inclusive flow's own: 0.73-0.82)."""
    n = 3_000_000
    plain, _ = generate_nf(n, seed=31)
    mixed, context = generate_nf(n, seed=31, p1_source="nf-decay-vessel")
    plain_p1, mixed_p1 = subset_labels(plain, VESSEL) >= 1, subset_labels(mixed, VESSEL) >= 1
    same = (plain.x == mixed.x) & (plain.px == mixed.px) & (plain.pz == mixed.pz)
    # rows the engine put outside the training range are redrawn, in each sampler by its own draws
    from shipfastsim.plugins.nf_after_shield.model import load_flow

    redrawn = torch.from_numpy(~_inside_training_range(_engine_rows(n, 31), load_flow(AFTER_SHIELD_WEIGHTS
                                                                                      ).knots_f.double().numpy()))
    # outside P1: the inclusive flow's muon, or a specialist's
    assert torch.all(same | mixed_p1 | plain_p1 | redrawn)
    assert not bool((same & plain_p1).any())  # the inclusive flow's own P1 muons are all redrawn
    assert torch.all(mixed.weight == 1.0) and context.counters["nf-after-shield:P1:n"] == int(mixed_p1.sum())
    p1 = P1_FRACTION
    k = int(mixed_p1.sum())
    assert abs(k / n - p1) < 3.0 * np.sqrt(p1 / n), (k / n, p1)
    with np.load(TRY2025_MODELS / "independent_decay_vessel.npz") as f:
        truth = f["state"].astype(np.float64)
    auc = gbt_auc(truth, _physics(mixed)[mixed_p1.numpy()], seed=1)
    assert auc < 0.55, auc


def test_p1_share_weights_are_exact(generate_nf):
    """``p1_share`` 0.3: 30 % of the muons are the specialist's P1 muons, with weight p_1 / 0.3,
    the rest (1 - p_1) / 0.7, so the weights average 1, the weighted P1 fraction is p_1 and the
    weighted mean pz equals the unweighted composite's (p1_share 0), within 4 standard errors."""
    n = 400_000
    plain, _ = generate_nf(n, seed=41, p1_source="nf-decay-vessel")
    shared, context = generate_nf(n, seed=42, p1_source="nf-decay-vessel", p1_share=0.3)
    member = (subset_labels(shared, VESSEL) >= 1).double()
    w = shared.weight
    assert abs(float(member.mean()) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    assert torch.allclose(w[member == 1], torch.tensor(P1_FRACTION / 0.3, dtype=torch.float64), rtol=1e-12)
    assert torch.allclose(w[member == 0], torch.tensor((1 - P1_FRACTION) / 0.7, dtype=torch.float64), rtol=1e-12)

    def pull(a: torch.Tensor, b: torch.Tensor) -> float:  # of the difference of two means
        return float((a.mean() - b.mean()) / torch.sqrt(a.var() / len(a) + b.var() / len(b)))

    assert abs(pull(w, torch.ones_like(w))) < 4.0
    assert abs(pull(w * member, torch.full_like(w, P1_FRACTION))) < 4.0
    assert abs(pull(w * shared.pz, plain.pz)) < 4.0
    assert context.counters["nf-after-shield:P1:sum_w"] == pytest.approx(float((w * member).sum()), rel=1e-12)


def test_p1_share_one_is_the_specialist(generate_nf, tmp_path):
    """``p1_share`` 1: the specialist's muons row for row (same seed), each of weight p_1, and a
    run of them weighs the spill's P1 muons: 4.5e6 x p_1 = 5,373.9 (hand calculation).  Read
    back from the float32 ntuple, every muon still enters the vessel (4 of 500,000 did not when
    the specialist's box was shrunk for float64 rounding only)."""
    n = 20_000
    batch, _ = generate_nf(n, seed=7, p1_source="nf-decay-vessel", p1_share=1.0)
    alone, _ = generate_nf(n, seed=7, component="nf-decay-vessel")
    for column in ("x", "y", "z", "px", "py", "pz", "pdg_id"):
        assert torch.equal(getattr(batch, column), getattr(alone, column)), column
    assert torch.all(batch.weight == P1_FRACTION) and torch.all(subset_labels(batch, VESSEL) >= 1)
    config = {"version": 1,
              "run": {"events": 500_000, "chunk_size": 250_000, "seed": 3, "device": "cpu",
                      "output": {"path": str(tmp_path / "dangerous.root"), "format": "fairship-root"}},
              "stages": [{"generator": "nf-after-shield",
                          "params": {"muons_per_pot": 1.125e-7, "p1_source": "nf-decay-vessel", "p1_share": 1.0}
                          | TRY2025_PARAMS["nf-after-shield"]}]}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run_production(load_config(path), progress=False)
    from shipfastsim.adapters.fairship import read_ntuple

    written, _ = read_ntuple(tmp_path / "dangerous.root")
    assert len(written) == 500_000 and torch.all(subset_labels(written, VESSEL) >= 1)
    assert float(written.weight.sum()) == pytest.approx(4.5e6 * 93_116 / 77_973_876, rel=1e-6)  # 5,373.9
