"""gan-target: generator contract, export module, trainer smoke test and fidelity of the bundled model.

The fidelity tests run the bundled model by inference only against the holdout split
of the shared 50k SHiP GAN sample (skipped when ../shared is absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shipfastsim.components import ChunkContext, Stage
from shipfastsim.plugins.gan_target import BUNDLED_WEIGHTS, COMPONENT
from shipfastsim.plugins.gan_target.model import load_generator
from shipfastsim.registry import get_registry
from shipfastsim.units import MUON_PDG_IDS

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ship_gan_target_muons_50k.root"
needs_shared = pytest.mark.skipif(not SHARED.is_file(), reason=f"shared sample {SHARED} absent")


def generate(n: int, seed: int = 1, first: int = 0, **params):
    stage = Stage(kind="generator", component="gan-target", params=COMPONENT.defaults() | params,
                  device=torch.device("cpu"))
    context = ChunkContext(chunk_index=0, first_muon=first, generator=torch.Generator().manual_seed(seed),
                           device=torch.device("cpu"))
    return get_registry().hook.shipfastsim_generate_muons(stage=stage, n_muons=n, context=context)


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
    onnx_export = pytest.importorskip("shipfastsim.adapters.onnx_export", reason="onnx adapter not yet available")
    if not hasattr(onnx_export, "OnnxRuntimeModule"):
        pytest.skip("onnx adapter not yet available")
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
    from shipfastsim.plugins.gan_target.data import load_split

    holdout = load_split([SHARED], "holdout")
    return holdout, generate(100_000, seed=11)


@needs_shared
def test_fidelity_on_holdout(holdout_and_generated):
    from shipfastsim.validation.metrics import compare

    holdout, generated = holdout_and_generated
    metrics = compare(holdout, generated, seed=0)  # 100k generated: the holdout's 5k dominate the noise
    print("\n" + metrics.table())
    for name, m in metrics.per_feature.items():
        assert m.w1_over_sigma < 0.05, name
    assert metrics.auc < 0.60
    # the reference-vs-reference FPD is consistent with 0: scale by its uncertainty if larger
    assert metrics.fpd <= 3 * max(metrics.fpd_ref, metrics.fpd_ref_err)


@needs_shared
def test_tails_on_holdout(holdout_and_generated):
    holdout, generated = holdout_and_generated
    for name, cut in (("p", 100.0), ("pt", 2.0)):
        reference = float((getattr(holdout, name) > cut).double().mean())
        candidate = float((getattr(generated, name) > cut).double().mean())
        print(f"fraction {name} > {cut} GeV: holdout {reference:.4f}, GAN {candidate:.4f}")
        assert abs(candidate / reference - 1) < 0.10, name
