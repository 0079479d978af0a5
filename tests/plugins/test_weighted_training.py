"""Training on a weighted sample: a synthetic "production" boosted like FairShip's.

A known muon population (independent log-normal pz, Gamma pT, uniform azimuths,
exponential z, prompt and displaced vertices) is written as FairShip would: the
region R = {pz > 60 GeV/c, pT > 1 GeV/c} is simulated ``BOOST`` times more often with
weight 1 / BOOST, the rest with weight 1, and the production declares the protons on
target its ``w`` refer to.  A small flow trained on it must reproduce the *unboosted*
population (the fraction in R and the pz, pT spectra of an independent unweighted
sample of it) and record muons_per_pot = sum(w) / POT within the statistics of the
boosted draws.  Trained with the weights dropped, it over-produces R by about the boost
(0.36 of the muons instead of 0.10) and fails.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from shipfastsim.batch import MuonBatch

#: Boost factor of region R (FairShip divides the weight of a boosted channel's muons by it).
BOOST = 5.0
#: Muons of the population per production (before boosting).
N_POPULATION = 20000
#: Protons on target per spill that the production's w refer to.
SPILL_POT = 4.0e13
PZ_MEDIAN, PZ_LOG_SIGMA, PT_SHAPE, PT_SCALE = 40.0, 0.6, 2.0, 0.5  # GeV/c
PZ_CUT, PT_CUT = 60.0, 1.0  # region R [GeV/c]


def fraction_in_region() -> float:
    """P(R) of the population by hand: P(pz > 60) P(pT > 1) (independent), with
    P(pT > c) = exp(-c / s) (1 + c / s) for a Gamma of shape 2 and scale s."""
    p_pz = 1.0 - scipy.stats.norm.cdf(math.log(PZ_CUT / PZ_MEDIAN) / PZ_LOG_SIGMA)
    c = PT_CUT / PT_SCALE
    return p_pz * math.exp(-c) * (1.0 + c)


def population(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` muons of the population: cm, GeV/c, z from the target start (FairShip frame)."""
    pz = PZ_MEDIAN * np.exp(PZ_LOG_SIGMA * rng.standard_normal(n))
    pt = rng.gamma(PT_SHAPE, PT_SCALE, n)
    phi, phi_r = rng.uniform(0, 2 * np.pi, (2, n))
    prompt = rng.random(n) < 0.5
    r = np.where(prompt, 1e-4 * np.sqrt(-2 * np.log1p(-rng.random(n))), 0.5 * np.exp(0.8 * rng.standard_normal(n)))
    return {"x": r * np.cos(phi_r), "y": r * np.sin(phi_r), "z": 0.1 + rng.exponential(15.0, n),
            "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pz,
            "pdg_id": np.where(rng.random(n) < 0.5, 13, -13).astype(np.int64)}


def in_region(pz: np.ndarray, pt: np.ndarray) -> np.ndarray:
    return (pz > PZ_CUT) & (pt > PT_CUT)


def boosted_production(path: Path, seed: int) -> float:
    """Write the boosted production to ``path``; returns its sum of w.  Outside R: one
    draw of the population, weight 1; inside R: the R muons of BOOST times as many
    independent draws, weight 1 / BOOST (expected sum of w: N_POPULATION)."""
    from shipfastsim.adapters.fairship import write_ntuple

    rng = np.random.default_rng(seed)
    plain = population(N_POPULATION, rng)
    boosted = population(int(BOOST * N_POPULATION), rng)
    keep_plain = ~in_region(plain["pz"], np.hypot(plain["px"], plain["py"]))
    keep_boosted = in_region(boosted["pz"], np.hypot(boosted["px"], boosted["py"]))
    columns = {k: np.concatenate([plain[k][keep_plain], boosted[k][keep_boosted]]) for k in plain}
    weights = np.concatenate([np.ones(keep_plain.sum()), np.full(keep_boosted.sum(), 1.0 / BOOST)])
    order = rng.permutation(len(weights))  # FairShip's jobs take consecutive rows: no blocks
    columns = {k: v[order] for k, v in columns.items()}
    batch = MuonBatch.from_columns(columns | {"weight": weights[order], "event_id": np.arange(len(weights))})
    write_ntuple(path, batch)
    return float(weights.sum())


def train_small_flow(files: list[Path], output: Path, spill_pot: float | None = SPILL_POT):
    from shipfastsim.plugins.flow_target.model import FlowConfig
    from shipfastsim.plugins.flow_target.train import FlowTrainConfig, train_flow

    config = FlowTrainConfig(seed=3, batch_size=256, max_steps=300, eval_every=100, val_generated=4000,
                             select_on_trees=False, flow=FlowConfig(couplings=4, hidden=24, layers=1))
    return train_flow(files, output, config, progress=False, spill_pot=spill_pot)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(sum of w of the production, the trained flow's JSON, 20000 generated muons [n, 7], its weights)."""
    from shipfastsim.plugins.flow_target.model import load_flow
    from shipfastsim.plugins.gan_target.sample import generate_features

    directory = tmp_path_factory.mktemp("weighted")
    production = directory / "production.root"
    total = boosted_production(production, seed=11)
    result = train_small_flow([production], directory / "model")
    document = json.loads(result.weights_path.with_suffix(".json").read_text())
    generated = generate_features(load_flow(result.weights_path), 20000, seed=5)
    return total, document, generated, result.weights_path


def test_boosted_production_is_built_as_intended(tmp_path):
    """The synthetic production itself: R holds about BOOST times its share of rows."""
    from shipfastsim.adapters.fairship import read_ntuple

    total = boosted_production(tmp_path / "p.root", seed=2)
    muons = read_ntuple(tmp_path / "p.root")[0]
    pt = torch.hypot(muons.px, muons.py).numpy()
    rows_in_r = in_region(muons.pz.numpy(), pt).mean()
    f = fraction_in_region()
    assert rows_in_r == pytest.approx(BOOST * f / (1 + (BOOST - 1) * f), rel=0.05)
    assert muons.weight.sum().item() == pytest.approx(total, rel=1e-6)


def test_flow_reproduces_the_unboosted_population(trained):
    """Weighted gates: the generated fraction in R against the population's (by hand), and
    W1 / sigma of log pz and log pT against an independent unweighted population sample."""
    _, _, generated, _ = trained
    pz, pt = generated[:, 5], np.hypot(generated[:, 3], generated[:, 4])
    n = len(pz)
    f = fraction_in_region()
    sigma_f = math.sqrt(f * (1 - f) / n)
    # 0.015 absolute: the flow's own modelling error plus 4 sigma of statistics; the boosted rows give 0.36.
    assert abs(in_region(pz, pt).mean() - f) < 0.015 + 4 * sigma_f, (in_region(pz, pt).mean(), f)
    truth = population(n, np.random.default_rng(99))
    truth_pt = np.hypot(truth["px"], truth["py"])
    for name, mine, theirs in (("log pz", np.log(pz), np.log(truth["pz"])), ("log pT", np.log(pt), np.log(truth_pt))):
        w1 = scipy.stats.wasserstein_distance(mine, theirs) / theirs.std()
        assert w1 < 0.05, (name, w1)  # unweighted training: 0.2-0.4


def test_normalisation_is_recorded_from_the_weights(trained):
    """muons_per_pot = sum(w) / POT in the model's JSON, and it equals the population's
    N / POT within the statistics of the boosted draws: Var(sum w) = N f (1 - f) (1 + 1 / k)."""
    total, document, _, _ = trained
    recorded = document["normalisation"]
    assert recorded["muons_per_pot"] == pytest.approx(total / SPILL_POT, rel=1e-12)
    assert "production.root" in recorded["source"]
    f = fraction_in_region()
    sigma = math.sqrt(N_POPULATION * f * (1 - f) * (1 + 1 / BOOST)) / SPILL_POT
    assert abs(recorded["muons_per_pot"] - N_POPULATION / SPILL_POT) < 4 * sigma
    assert document["sample_weights"]["weighted"] is True
    effective = document["sample_weights"]["train_effective_size"]
    assert effective < 0.9 * document["sample_weights"]["train_muons"]  # unequal weights: fewer effective muons


def test_run_of_the_model_writes_per_spill_weights(trained, tmp_path):
    """A run of the model trained with a declared POT: no normalisation warning, and the
    generated muons' weights sum to muons_per_pot x 4e13 muons per spill (by hand)."""
    import warnings

    import yaml

    from shipfastsim.config import load_config
    from shipfastsim.runner import run_production

    total, document, _, weights_path = trained
    events = 500
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "version": 1,
        "run": {"events": events, "chunk_size": 250, "seed": 1, "output": {"path": str(tmp_path / "out.root")}},
        "stages": [{"generator": "flow-target", "params": {"weights": str(weights_path)}}]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an UnknownNormalisationWarning would fail here
        summary = run_production(load_config(config), progress=False)
    assert summary["normalisation"]["per_spill"] is True
    assert summary["normalisation"]["muons_per_pot"] == pytest.approx(total / SPILL_POT, rel=1e-12)
    assert summary["stages"][0]["weight_out"] == pytest.approx(total / SPILL_POT * 4e13, rel=1e-7)


def _write(path: Path, weights: np.ndarray, seed: int = 0) -> Path:
    from shipfastsim.adapters.fairship import write_ntuple

    columns = population(len(weights), np.random.default_rng(seed))
    write_ntuple(path, MuonBatch.from_columns(columns | {"weight": weights, "event_id": np.arange(len(weights))}))
    return path


@pytest.mark.parametrize(("weights", "says"), [
    (np.array([1.0, np.nan, 2.0, 1.0]), "not finite"),
    (np.array([1.0, -0.5, 2.0, 1.0]), "negative"),
    (np.zeros(4), "every muon weight w is 0"),
])
def test_unusable_weights_are_refused_naming_the_file(tmp_path, capsys, weights, says):
    from shipfastsim.cli import main

    path = _write(tmp_path / "bad_weights.root", np.tile(weights, 50))
    status = main(["train", "flow-target", "--input", str(path), "--output", str(tmp_path / "m"), "--max-steps", "1",
                   "--quiet"])
    error = capsys.readouterr().err
    assert status == 2 and says in error and "bad_weights.root" in error, error


def test_equal_weights_train_exactly_as_unweighted(tmp_path):
    """All w equal (3.5 here) is an unweighted sample: it takes the unweighted code path
    (no importance weights, so uniform batch rows as before weights were honoured) and gives
    the same network, bit for bit, as w = 1."""
    from safetensors.numpy import load_file

    from shipfastsim.plugins.gan_target.model import GanConfig
    from shipfastsim.plugins.gan_target.sample import prepare_sample
    from shipfastsim.plugins.gan_target.train import TrainConfig, train

    trained = []
    for value in (1.0, 3.5):
        path = _write(tmp_path / f"w{value}.root", np.full(3000, value), seed=4)
        sample = prepare_sample([path], knots=24)
        assert sample.weights is None and sample.validation_weights is None
        assert sample.total_weight == pytest.approx(3000 * value, rel=1e-12)
        config = TrainConfig(seed=1, batch_size=64, max_steps=6, eval_every=3, val_generated=500,
                             select_on_trees=False, critic_hidden=16, critic_layers=1,
                             gan=GanConfig(hidden=16, layers=1))
        result = train([path], tmp_path / f"m{value}", config, progress=False)
        trained.append(load_file(str(result.weights_path)))
    assert trained[0].keys() == trained[1].keys()
    for key in trained[0]:
        np.testing.assert_array_equal(trained[0][key], trained[1][key], err_msg=key)


def test_gan_trains_on_a_weighted_sample_and_records_it(tmp_path):
    """``shipfastsim train gan-target --weights-spill-pot``: the importance resampling runs on a
    weighted file, and the JSON records muons_per_pot = sum(w) / POT and the effective size
    (sum w)^2 / sum w^2 of the train split, by hand."""
    from shipfastsim.cli import main
    from shipfastsim.validation.split import split_mask

    weights = np.where(np.arange(3000) % 3 == 0, 4.0, 1.0)
    path = _write(tmp_path / "weighted.root", weights, seed=6)
    status = main(["train", "gan-target", "--input", str(path), "--output", str(tmp_path / "m"), "--max-steps", "4",
                   "--eval-every", "2", "--batch-size", "64", "--hidden", "16", "--layers", "1",
                   "--weights-spill-pot", "5e13", "--quiet"])
    assert status == 0
    document = json.loads((tmp_path / "m" / "gan_target.json").read_text())
    w_train = weights[split_mask(len(weights), "train")]
    assert document["sample_weights"]["train_effective_size"] == pytest.approx(
        w_train.sum() ** 2 / (w_train**2).sum(), rel=1e-12)
    assert document["normalisation"]["muons_per_pot"] == pytest.approx(weights.sum() / 5e13, rel=1e-12)


def test_row_sampler_draws_rows_in_proportion_to_their_weight():
    """Frequencies of 2 x 10^5 draws against w / sum(w) (chi-square), and None draws as torch.randint."""
    from shipfastsim.sample_weights import row_sampler

    weights = np.array([1.0, 0.0, 3.0, 0.5, 5.5])
    draw = row_sampler(len(weights), weights, torch.Generator().manual_seed(0))
    counts = np.bincount(np.concatenate([draw(1000).numpy() for _ in range(200)]), minlength=len(weights))
    expected = 200_000 * weights / weights.sum()
    assert counts[1] == 0
    nonzero = expected > 0
    chi2 = np.sum((counts[nonzero] - expected[nonzero]) ** 2 / expected[nonzero])
    assert scipy.stats.chi2(nonzero.sum() - 1).sf(chi2) > 1e-3, (counts, expected)
    uniform = row_sampler(10, None, torch.Generator().manual_seed(3))(50)
    torch.testing.assert_close(uniform, torch.randint(10, (50,), generator=torch.Generator().manual_seed(3)))


def test_effective_sample_size_by_hand():
    from shipfastsim.sample_weights import effective_sample_size, training_weights

    assert effective_sample_size(np.array([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)
    assert effective_sample_size(None, 7) == 7.0
    assert training_weights(np.full(5, 2.0)) is None
    np.testing.assert_allclose(training_weights(np.array([1.0, 3.0])), [0.5, 1.5])
