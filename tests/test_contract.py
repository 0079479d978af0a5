"""One contract per hook, parametrised over every registered component of that kind."""

import pytest
import torch

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.batch import MuonBatch
from shipfastsim.config import make_stage
from shipfastsim.data import TARGET_SAMPLE
from shipfastsim.registry import get_registry
from shipfastsim.runner import apply_stage

REGISTRY = get_registry()
#: Parameters for components whose required parameters have no default.
CONTRACT_PARAMS = {"fairship-file": {"files": [str(TARGET_SAMPLE)]}}
#: Muons fed to propagators (slow reference physics) and to the other stages.
N_PROPAGATED, N_MUONS = 200, 2000


def _stage(kind, name):
    plane = "shield_end" if kind == "propagator" else None
    return make_stage(kind, name, CONTRACT_PARAMS.get(name, {}), plane=plane)


def _run(kind, name, batch, seed=3, n_muons=N_MUONS):
    from shipfastsim.components import ChunkContext

    context = ChunkContext(0, 0, torch.Generator().manual_seed(seed), torch.device("cpu"))
    return apply_stage(REGISTRY, _stage(kind, name), batch, n_muons, context)


@pytest.fixture(scope="module")
def target_muons() -> MuonBatch:
    return read_ntuple(TARGET_SAMPLE, entry_stop=N_MUONS)[0]


def _assert_physical(batch: MuonBatch):
    for name, column in batch.columns().items():
        if column.dtype.is_floating_point:
            assert torch.isfinite(column).all(), f"non-finite {name}"
    assert torch.isin(batch.pdg_id, torch.tensor([13, -13])).all()
    assert (batch.weight >= 0).all() and (batch.p > 0).all()


@pytest.mark.parametrize("name", REGISTRY.names("generator"))
def test_generator_contract(name):
    batch = _run("generator", name, None, n_muons=N_MUONS)
    assert len(batch) == N_MUONS and batch.device == torch.device("cpu")
    _assert_physical(batch)
    assert _run("generator", name, None, n_muons=N_MUONS).equals(batch), "same seed, same muons"
    assert len(_run("generator", name, None, n_muons=0)) == 0


@pytest.mark.parametrize("name", REGISTRY.names("propagator"))
def test_propagator_contract(name, target_muons):
    muons = target_muons.select(torch.arange(N_PROPAGATED))
    out = _run("propagator", name, muons)
    assert len(out) <= len(muons)
    _assert_physical(out) if len(out) else None
    assert torch.isin(out.event_id, muons.event_id).all()
    assert (out.z > muons.z.max()).all(), "muons move downstream to the plane"
    assert _run("propagator", name, muons).equals(out), "same seed, same muons"


@pytest.mark.parametrize("name", REGISTRY.names("augmenter"))
def test_augmenter_contract(name, target_muons):
    out = _run("augmenter", name, target_muons)
    _assert_physical(out)
    total_in, total_out = target_muons.weight.sum(), out.weight.sum()
    print(f"{name}: weight in {float(total_in):.6g}, out {float(total_out):.6g}")
    assert torch.isclose(total_out, total_in, rtol=0.05), "weighted total must stay unbiased"
    assert _run("augmenter", name, target_muons).equals(out)


@pytest.mark.parametrize("name", REGISTRY.names("filter"))
def test_filter_contract(name, target_muons):
    from shipfastsim.components import ChunkContext

    context = ChunkContext(0, 0, torch.Generator().manual_seed(3), torch.device("cpu"))
    decision = REGISTRY.hook.shipfastsim_filter_muons(stage=_stage("filter", name), batch=target_muons,
                                                     context=context)
    assert decision.keep.dtype == torch.bool and decision.keep.shape == (len(target_muons),)
    if decision.weight is not None:
        assert decision.weight.shape == (len(target_muons),) and (decision.weight >= 0).all()


def test_every_kind_has_a_contract():
    assert REGISTRY.names("generator") and REGISTRY.names("augmenter")
