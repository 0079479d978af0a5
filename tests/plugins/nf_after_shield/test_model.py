"""The flow itself: invertibility, log-density against an autograd Jacobian, exact importance weights;
one contract over both coupling types (affine, rational-quadratic spline)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from shipfastsim.plugins.nf_after_shield.model import (
    COUPLINGS,
    DIM,
    FlowConfig,
    MuonFlow,
    NoiseToMuon,
    load_flow,
    physical_to_features,
    save_flow,
)


@pytest.fixture(scope="module", params=COUPLINGS)
def random_flow(request) -> MuonFlow:
    """A flow with fitted maps on a made-up sample and random (non-identity) couplings of
    each type, float64."""
    torch.manual_seed(4)
    rng = np.random.default_rng(0)
    n = 20000
    pz = np.exp(rng.normal(3.0, 1.0, n))
    x, y = rng.standard_t(4, n) * 100, rng.normal(0, 80, n)
    px, py = rng.normal(0, 0.1, n) * pz, rng.normal(0, 0.05, n) * pz
    flow = MuonFlow(FlowConfig(layers=4, hidden=16, knots=12, coupling=request.param))
    features = physical_to_features(x, y, px, py, pz)
    flow.fit_maps(features)
    charge = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    flow.fit_whitening(flow.gaussianise(features) + 0.5 * charge[:, None], charge)  # correlated, charge-dependent
    # Splines this far from the identity are steep enough that the 7e-7 float32 rounding of
    # the maps' round trip (log_prob re-Gaussianises) moves their log-density by 1e-5 at 0.3.
    spread = 0.3 if request.param == "affine" else 0.15
    for coupling in flow.couplings:
        torch.nn.init.normal_(coupling.last.weight, std=spread)
        torch.nn.init.normal_(coupling.last.bias, std=spread)
    return flow.double().eval().requires_grad_(False)


def test_parameter_count_is_the_seeds():
    assert sum(p.numel() for p in MuonFlow(FlowConfig()).parameters()) == 16100  # seed 000: "16k parameters"
    # Five spline couplings of 8 bins predict only their free columns, three autoregressive
    # splines all five: about the same size.
    spline = MuonFlow(FlowConfig(coupling="spline", layers=5))
    assert sum(p.numel() for p in spline.parameters()) == 16267
    autoregressive = MuonFlow(FlowConfig(coupling="autoregressive-spline", layers=3))
    assert sum(p.numel() for p in autoregressive.parameters()) == 15720


def test_unknown_coupling_names_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: affine, spline, autoregressive-spline"):
        MuonFlow(FlowConfig(coupling="cubic"))


def test_a_new_coupling_is_the_identity():
    # Both coupling types start as the identity map (zero last layer), so training starts
    # from the Gaussianised, whitened features (to the float32 rounding of the initial weights).
    for coupling in COUPLINGS:
        flow = MuonFlow(FlowConfig(layers=3, hidden=8, coupling=coupling)).double().requires_grad_(False)
        u, q = 3.0 * torch.randn(200, DIM, dtype=torch.float64), torch.ones(200, 1, dtype=torch.float64)
        for layer in flow.couplings:
            back, log_det = layer.inverse(u, q)
            np.testing.assert_allclose(layer(u, q).numpy(), u.numpy(), rtol=1e-7, atol=1e-7)
            np.testing.assert_allclose(back.numpy(), u.numpy(), rtol=1e-7, atol=1e-7)
            np.testing.assert_allclose(log_det.numpy(), 0.0, atol=1e-7)


def test_latent_round_trip(random_flow):
    eps, q = torch.randn(500, DIM, dtype=torch.float64), torch.sign(torch.randn(500, 1, dtype=torch.float64))
    z, _ = random_flow.g_to_latent(random_flow.latent_to_g(eps, q), q)
    assert torch.allclose(z, eps, atol=1e-10)


def test_log_prob_is_the_change_of_variables(random_flow):
    # Independent: log N(eps; 0, sigma^2) - log|det d physics / d eps| with the Jacobian from autograd.
    torch.manual_seed(1)
    sigma = 0.7
    eps = torch.randn(64, DIM, dtype=torch.float64)
    q = torch.where(torch.rand(64, 1) < 0.5, 1.0, -1.0).double()
    physics = random_flow.sample_physics(eps, q, sigma)  # latent z = sigma * eps
    expected = []
    for i in range(64):
        def state(z, i=i):
            return random_flow.sample_physics(z.view(1, DIM), q[i:i + 1], 1.0)[0]
        z = eps[i] * sigma
        jac = torch.autograd.functional.jacobian(state, z)
        log_prior = scipy.stats.multivariate_normal(np.zeros(DIM), sigma**2 * np.eye(DIM)).logpdf(z.numpy())
        expected.append(log_prior - torch.linalg.slogdet(jac)[1].item())
    got = random_flow.log_prob(*physics.T, q[:, 0], sigma=sigma)
    np.testing.assert_allclose(got.numpy(), np.array(expected), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 0.8, 0.45])
def test_weight_is_the_density_ratio(random_flow, sigma):
    torch.manual_seed(2)
    noise = torch.cat([torch.randn(300, DIM), torch.rand(300, 1)], 1).double()
    out = NoiseToMuon(random_flow, sigma)(noise)
    z = sigma * noise[:, :DIM].numpy()
    ratio = (scipy.stats.multivariate_normal(np.zeros(DIM), np.eye(DIM)).pdf(z)
             / scipy.stats.multivariate_normal(np.zeros(DIM), sigma**2 * np.eye(DIM)).pdf(z))
    np.testing.assert_allclose(out[:, 7].numpy(), ratio, rtol=1e-9)
    assert set(out[:, 6].tolist()) <= {13.0, -13.0}
    assert torch.all(out[:, 2] == random_flow.config.z_plane) and torch.all(out[:, 5] > 0)


def test_save_and_load_round_trip(random_flow, tmp_path):
    path = save_flow(random_flow.float(), tmp_path / "flow.safetensors", {"note": "test"})
    random_flow.double()
    loaded = load_flow(path)
    noise = torch.cat([torch.randn(50, DIM), torch.rand(50, 1)], 1)
    a = NoiseToMuon(loaded, 0.6)(noise)
    b = NoiseToMuon(random_flow.float(), 0.6)(noise)
    random_flow.double()
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-5)
    assert not list(tmp_path.glob("*.pt")) and (tmp_path / "flow.json").is_file()


def _randomised(flow: MuonFlow, spread: float = 0.15) -> MuonFlow:
    for coupling in flow.couplings:
        torch.nn.init.normal_(coupling.last.weight, std=spread)
        torch.nn.init.normal_(coupling.last.bias, std=spread)
    return flow.double().eval().requires_grad_(False)


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_a_second_condition_reaches_every_transform(coupling):
    """``contexts = 2`` (charge, then nf-decay-vessel's P2 flag): invertible given both, the
    log-determinant that of an autograd Jacobian, and the flag changes every transform's output."""
    torch.manual_seed(3)
    flow = _randomised(MuonFlow(FlowConfig(layers=3, hidden=12, coupling=coupling, contexts=2)))
    eps = torch.randn(40, DIM, dtype=torch.float64)
    conditions = torch.stack([torch.sign(torch.randn(40)), torch.sign(torch.randn(40))], 1).double()
    g = flow.latent_to_g(eps, conditions)
    z, log_det = flow.g_to_latent(g, conditions)
    assert torch.allclose(z, eps, atol=1e-10)
    for i in range(3):
        def to_latent(v: torch.Tensor, i: int = i) -> torch.Tensor:
            return flow.g_to_latent(v.view(1, DIM), conditions[i:i + 1])[0][0]
        jac = torch.autograd.functional.jacobian(to_latent, g[i])
        assert float(log_det[i]) == pytest.approx(torch.linalg.slogdet(jac)[1].item(), rel=1e-8, abs=1e-9)
    flipped = conditions * torch.tensor([1.0, -1.0], dtype=torch.float64)
    for layer in flow.couplings:
        assert (layer(eps, conditions) - layer(eps, flipped)).abs().max() > 1e-3
    assert flow.white_mean.shape == (2, DIM)  # the whitening stays per charge, the first condition


def test_the_autoregressive_transform_stays_autoregressive_with_two_conditions():
    """Column k of the data -> latent map depends on the columns before it in the order only."""
    torch.manual_seed(5)
    flow = _randomised(MuonFlow(FlowConfig(layers=2, hidden=15, coupling="autoregressive-spline", contexts=2)), 0.5)
    conditions = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    for layer in flow.couplings:
        order = layer.order.tolist()
        jac = torch.autograd.functional.jacobian(lambda v, layer=layer: layer.inverse(v.view(1, DIM), conditions)[0][0],
                                                 torch.randn(DIM, dtype=torch.float64))
        permuted = jac[order][:, order]  # rows and columns in the order: lower triangular
        assert torch.all(torch.triu(permuted, 1) == 0.0) and torch.all(torch.diagonal(permuted) > 0)
        assert torch.tril(permuted, -1).abs().max() > 1e-4
