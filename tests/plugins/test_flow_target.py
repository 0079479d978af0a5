"""flow-target: the flow's exact density, the radial dequantisation, the trainer, and the bundled model's
fidelity on the holdout (inference only; the generic generator contract and the ONNX/SOFIE agreement
run over every registered component in tests/test_contract.py and tests/adapters)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from shipfastsim.plugins.flow_target.model import FlowConfig, FlowGenerator, load_flow, radial_dequantise
from shipfastsim.plugins.gan_target.model import N_FEATURES
from tests.plugins.target_fidelity import generate_with, holdout_report


@pytest.fixture(scope="module")
def random_flow() -> FlowGenerator:
    """A small flow with random (not identity) couplings, in float64."""
    torch.manual_seed(0)
    flow = FlowGenerator(FlowConfig(couplings=4, hidden=16)).double()
    for coupling in flow.couplings:
        torch.nn.init.normal_(coupling.net[-1].weight, std=0.3)
        torch.nn.init.normal_(coupling.net[-1].bias, std=0.3)
    return flow


def test_log_prob_is_the_change_of_variables_density(random_flow):
    """log p(x) = log N(z) - log|det dx/dz| with the Jacobian taken by autograd of the generation map."""
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), 4).double()
    z = torch.randn(4, N_FEATURES, dtype=torch.float64)
    with torch.no_grad():
        x = random_flow.sample_space(z, onehot)
        log_prob = random_flow.log_prob(x, onehot)
    for i in range(4):
        def generation(v, row=onehot[i:i + 1]):
            return random_flow.sample_space(v[None], row)[0]

        jacobian = torch.autograd.functional.jacobian(generation, z[i])
        normal = scipy.stats.norm.logpdf(z[i].numpy()).sum()
        expected = normal - torch.linalg.slogdet(jacobian)[1].item()
        # 1e-6: the fixed rotations are stored in float32, orthogonal to ~1e-7 only
        assert log_prob[i].item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_inverse_recovers_the_noise(random_flow):
    onehot = torch.nn.functional.one_hot(torch.arange(100) % 4, 4).double()
    z = torch.randn(100, N_FEATURES, dtype=torch.float64)
    x = random_flow.sample_space(z, onehot)
    for k in reversed(range(len(random_flow.couplings))):
        x, _ = random_flow.couplings[k].inverse(x, onehot)
        x = x @ random_flow.rotations[k].T
    torch.testing.assert_close(x, z, rtol=1e-6, atol=1e-6)  # float32 rotations, see above


def test_radial_dequantisation_keeps_the_direction_with_a_chi4_radius():
    """|v|^2 of each dequantised unit vector follows chi^2 with 4 degrees of freedom, the
    direction is kept exactly, the first four columns are untouched."""
    n = 20000
    rng = torch.Generator().manual_seed(1)
    phi = 2 * np.pi * torch.rand(n, 2, generator=rng, dtype=torch.float64)
    features = torch.cat([torch.randn(n, 4, dtype=torch.float64, generator=rng), torch.cos(phi[:, :1]),
                          torch.sin(phi[:, :1]), torch.cos(phi[:, 1:]), torch.sin(phi[:, 1:])], dim=1)
    flow_space = radial_dequantise(features, rng)
    torch.testing.assert_close(flow_space[:, :4], features[:, :4], rtol=0, atol=0)
    for j in (4, 6):
        radius2 = (flow_space[:, j:j + 2] ** 2).sum(dim=1).numpy()
        assert scipy.stats.kstest(radius2, scipy.stats.chi2(4).cdf).pvalue > 1e-3, j
        unit = flow_space[:, j:j + 2] / flow_space[:, j:j + 2].norm(dim=1, keepdim=True)
        torch.testing.assert_close(unit, features[:, j:j + 2])
    assert not torch.allclose(flow_space[:, 4:6].norm(dim=1), flow_space[:, 6:8].norm(dim=1))  # independent radii


def test_trainer_smoke(tmp_path):
    from shipfastsim.cli import main
    from shipfastsim.data import TARGET_SAMPLE

    status = main(["train", "flow-target", "--input", str(TARGET_SAMPLE), "--output", str(tmp_path),
                   "--max-steps", "4", "--eval-every", "2", "--batch-size", "64", "--quiet"])
    assert status == 0
    import json

    document = json.loads((tmp_path / "flow_target.json").read_text())
    assert [h["step"] for h in document["history"]] == [2, 4]
    assert len(generate_with("flow-target", 100, weights=str(tmp_path / "flow_target.safetensors"))) == 100


def test_bundled_weights_small_and_float32():
    from safetensors.torch import load_file

    from shipfastsim.plugins.flow_target import BUNDLED_WEIGHTS

    assert BUNDLED_WEIGHTS.stat().st_size < 1_000_000
    assert all(v.dtype == torch.float32 for v in load_file(str(BUNDLED_WEIGHTS)).values())
    assert load_flow(BUNDLED_WEIGHTS).noise_width == N_FEATURES + 1


def test_fidelity_on_holdout():
    report = holdout_report("flow-target")
    print("\n" + report.metrics.table() + f"\n{report.memorisation}")
    assert report.metrics.gbt_auc_physics < 0.55
    for name, m in report.metrics.per_feature.items():
        assert m.w1_over_sigma < 0.05, name
    assert report.memorisation.median_ratio > 0.9 and report.memorisation.exact_copies == 0
    assert report.metrics.fpd <= 3 * float(np.hypot(report.metrics.fpd_err, report.metrics.fpd_ref_err))


def test_no_muon_above_the_beam_momentum():
    """The bundled flow's tail reaches beyond 400 GeV/c (7 in 5e5 muons before the redraw,
    up to 714 GeV/c): those muons are redrawn, and every other muon is the one it was."""
    from shipfastsim.components import ChunkContext, Stage
    from shipfastsim.plugins.flow_target import COMPONENT
    from shipfastsim.registry import get_registry

    def chunk(**params):
        stage = Stage("generator", COMPONENT.name, COMPONENT.defaults() | params, torch.device("cpu"))
        context = ChunkContext(0, 0, torch.Generator().manual_seed(1), torch.device("cpu"))
        return get_registry().hook.shipfastsim_generate_muons(stage=stage, n_muons=500_000, context=context)

    batch = chunk()
    assert float(batch.p.max()) <= 400.0
    from shipfastsim.plugins.flow_target.model import load_flow
    from shipfastsim.plugins.gan_target import draw_noise, run_chunked

    flow = load_flow(COMPONENT.defaults()["weights"])
    with torch.inference_mode():  # the chunk's own noise and muons, before the redraw
        raw = run_chunked(flow, draw_noise(500_000, flow.noise_width - 1, torch.Generator().manual_seed(1)))
    above = torch.linalg.norm(raw[:, 3:6].double(), dim=1) > 400.0
    assert 0 < int(above.sum()) < 50
    assert torch.equal(batch.px[~above], raw[~above, 3].double()) and not torch.equal(batch.px[above],
                                                                                      raw[above, 3].double())
