"""gan-target: generator contract, export module, trainer smoke test and fidelity of the bundled model.

The fidelity tests run the bundled model by inference only against the holdout split
of the shared 50k SHiP GAN sample.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shipfastsim.plugins.gan_target import BUNDLED_WEIGHTS
from shipfastsim.plugins.gan_target.model import load_generator
from shipfastsim.registry import get_registry
from shipfastsim.units import MUON_PDG_IDS
from tests.plugins.target_fidelity import generate_with, holdout_report


def generate(n: int, seed: int = 1, first: int = 0, **params):
    return generate_with("gan-target", n, seed, first, **params)


def test_contract_shapes_dtypes_ids():
    batch = generate(2000, first=500)
    assert len(batch) == 2000 and batch.device == torch.device("cpu")
    assert batch.x.dtype == torch.float64 and batch.pdg_id.dtype == torch.int64
    assert set(batch.pdg_id.unique().tolist()) <= set(MUON_PDG_IDS)
    assert torch.equal(batch.event_id, torch.arange(500, 2500))
    assert torch.all(batch.weight == 1.0)
    assert torch.all(batch.pz > 0) and torch.all(torch.isfinite(batch.x))
    assert torch.all((batch.z > -1) & (batch.z < 400))  # inside the target region [cm]
    assert len(generate(0)) == 0


def test_seeded_reproducibility():
    assert generate(1000, seed=3).equals(generate(1000, seed=3))
    assert not torch.equal(generate(1000, seed=3).px, generate(1000, seed=4).px)


def test_weights_small_and_loadable():
    from safetensors.torch import load_file

    assert BUNDLED_WEIGHTS.stat().st_size < 1_000_000
    state = load_file(str(BUNDLED_WEIGHTS))
    assert all(v.dtype == torch.float32 for v in state.values())
    import json

    config = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())
    assert "seed" in config["training"] and config["split"]["holdout"] == [0.9, 1.0]


def test_quantile_map_relu_form_inverts_and_extends_linearly():
    import numpy as np

    from shipfastsim.plugins.gan_target.model import (
        N_MAPPED,
        GanConfig,
        MuonGenerator,
        apply_quantile_map,
        fit_quantile_map,
    )

    rng = np.random.default_rng(0)
    samples = [rng.standard_cauchy(20000), np.log(rng.exponential(40.0, 20000)),
               np.concatenate([np.full(15000, -11.5), rng.normal(-3, 1.5, 5000)]),  # point mass + bulk (prompt r)
               rng.uniform(14, 360, 20000)][:N_MAPPED]
    maps = [fit_quantile_map(v, np.ones(len(v)), 24) for v in samples]
    for t, g in maps:
        assert np.all(np.diff(t) > 0) and np.all(np.diff(g) > 0)
    module = MuonGenerator(GanConfig(knots=24)).double()
    module.set_quantile_maps(maps)
    for j, v in enumerate(samples):
        g = apply_quantile_map(v, *maps[j])
        if j != 2:  # continuous samples map to ~ standard normal
            assert abs(np.median(g)) < 0.05 and 0.9 < np.std(g[np.abs(g) < 3.5]) < 1.1
        columns = np.zeros((len(v), N_MAPPED))
        columns[:, j] = g
        back = module.inverse_map(torch.as_tensor(columns))[:, j].numpy()
        np.testing.assert_allclose(back, v, rtol=1e-9, atol=1e-9 * np.ptp(v))
    # beyond the outer knots: linear continuation with the outer segments' slopes (no clamp)
    wide = torch.linspace(-8, 8, 161, dtype=torch.float64)[:, None].repeat(1, N_MAPPED)
    out = module.inverse_map(wide).numpy()
    assert np.all(np.diff(out, axis=0) > 0)
    for j, (t, g) in enumerate(maps):
        np.testing.assert_allclose(out[-1, j], t[-1] + (8 - g[-1]) * (t[-1] - t[-2]) / (g[-1] - g[-2]), rtol=1e-9)


def test_chunked_generation_matches_forward():
    module = load_generator(BUNDLED_WEIGHTS)
    noise = torch.cat([torch.randn(1000, module.config.noise_dim), torch.rand(1000, 1)], dim=1)
    with torch.inference_mode():
        assert torch.allclose(module.generate(noise, chunk_size=128), module(noise), rtol=1e-5, atol=1e-6)


def test_export_module_matches_generator():
    description = get_registry().hook.shipfastsim_export_description(component="gan-target", params={})
    assert description.input_names == ("noise",) and description.output_names == ("muon",)
    noise = torch.cat([torch.randn(64, description.example_inputs[0].shape[1] - 1), torch.rand(64, 1)], dim=1)
    with torch.no_grad():
        out = description.module(noise)
    assert out.shape == (64, 7)
    assert set(out[:, 6].tolist()) <= {13.0, -13.0}
    assert torch.equal(out, description.module(noise))  # deterministic
    assert get_registry().hook.shipfastsim_export_description(component="phi-rotation", params={}) is None


def test_onnxruntime_backend_matches_torch():
    pytest.importorskip("onnxruntime")
    torch_batch, ort_batch = generate(500), generate(500, backend="onnxruntime")
    assert torch.equal(torch_batch.pdg_id, ort_batch.pdg_id)
    assert torch.allclose(torch_batch.pz, ort_batch.pz, rtol=1e-4)


def test_trainer_smoke(tmp_path):
    from shipfastsim.cli import main
    from shipfastsim.data import TARGET_SAMPLE

    status = main(["train", "gan-target", "--input", str(TARGET_SAMPLE), "--output", str(tmp_path),
                   "--max-steps", "4", "--eval-every", "2", "--batch-size", "64", "--quiet"])
    assert status == 0
    weights = tmp_path / "gan_target.safetensors"
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 4 and len(checkpoint["history"]) == 2
    assert load_generator(weights).config.noise_dim > 0
    assert len(generate(100, weights=str(weights))) == 100


@pytest.fixture(scope="module")
def holdout_and_generated():
    report = holdout_report("gan-target")
    return report.holdout, report.generated


def test_fidelity_on_holdout():
    """The gate: boosted-trees AUC < 0.55 on the physics features and W1/sigma < 0.05 on every
    feature against the holdout, and no memorisation of the training muons."""
    report = holdout_report("gan-target")  # 100k generated: the holdout's 5k dominate the noise
    metrics = report.metrics
    print("\n" + metrics.table() + f"\n{report.memorisation}")
    assert metrics.gbt_auc_physics < 0.55
    for name, m in metrics.per_feature.items():
        assert m.w1_over_sigma < 0.05, name
    assert metrics.auc < 0.60
    assert report.memorisation.median_ratio > 0.9 and report.memorisation.exact_copies == 0
    # FPD consistent with 0 within 3 standard errors (its own and the reference-vs-reference one)
    assert metrics.fpd <= 3 * float(np.hypot(metrics.fpd_err, metrics.fpd_ref_err))


def test_no_pile_up_and_displaced_tail(holdout_and_generated):
    """No clamp spikes (repeated identical values), physical outputs, and the displaced
    muons' radial tail (r > 2 cm, ~15 muons in the holdout) Poisson-consistent with it."""
    holdout, generated = holdout_and_generated
    for name in ("z", "p", "pt"):
        _, counts = torch.unique(getattr(generated, name), return_counts=True)
        assert int(counts.max()) < 20, f"{name}: {int(counts.max())} identical values (pile-up at a bound)"
    assert torch.all(generated.pz > 0) and torch.all(generated.z > 0)
    r_gen, r_hold = torch.hypot(generated.x, generated.y), torch.hypot(holdout.x, holdout.y)
    for cut in (1.0, 2.0):
        expected = float((r_gen > cut).double().mean()) * len(holdout)
        observed = int((r_hold > cut).sum())
        print(f"holdout muons with r > {cut} cm: {observed}, GAN expects {expected:.1f}")
        assert abs(observed - expected) < 3 * expected**0.5 + 1, cut


def test_tails_on_holdout(holdout_and_generated):
    holdout, generated = holdout_and_generated
    for name, cut in (("p", 100.0), ("pt", 2.0)):
        reference = float((getattr(holdout, name) > cut).double().mean())
        candidate = float((getattr(generated, name) > cut).double().mean())
        print(f"fraction {name} > {cut} GeV: holdout {reference:.4f}, GAN {candidate:.4f}")
        assert abs(candidate / reference - 1) < 0.10, name
