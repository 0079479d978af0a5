"""One contract per hook, parametrised over every registered component of that kind."""

import functools

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


@functools.cache
def _cached_stage(kind, name):
    return _stage(kind, name)  # one stage per component: its cache keeps loaded models


def _run(kind, name, batch, seed=3, n_muons=N_MUONS):
    from shipfastsim.components import ChunkContext

    context = ChunkContext(0, 0, torch.Generator().manual_seed(seed), torch.device("cpu"))
    return apply_stage(REGISTRY, _cached_stage(kind, name), batch, n_muons, context)


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


#: Independent seeds over which a stage's weighted total must average to its input's.
N_SEEDS = 16


def _assert_unbiased(totals: list[float], total_in: float, what: str) -> None:
    """The weighted total is kept exactly (when it does not depend on the seed, as for an
    exactly conserving stage) or on average: the mean over seeds within 4 standard errors
    of the input total."""
    totals_t = torch.tensor(totals, dtype=torch.float64)
    spread = float(totals_t.std())
    print(f"{what}: weight in {total_in:.12g}, out {float(totals_t.mean()):.12g} +- {spread:.3g} over seeds")
    if spread <= 1e-12 * abs(total_in):
        assert abs(float(totals_t.mean()) - total_in) <= 1e-12 * abs(total_in), f"{what}: total not kept"
    else:
        assert abs(float(totals_t.mean()) - total_in) < 4 * spread / len(totals) ** 0.5, f"{what}: biased total"


@pytest.mark.parametrize("name", REGISTRY.names("augmenter"))
def test_augmenter_contract(name, target_muons):
    out = _run("augmenter", name, target_muons)
    _assert_physical(out)
    totals = [float(_run("augmenter", name, target_muons, seed=seed).weight.sum()) for seed in range(N_SEEDS)]
    _assert_unbiased(totals, float(target_muons.weight.sum()), name)
    assert _run("augmenter", name, target_muons).equals(out)


@pytest.mark.parametrize("name", REGISTRY.names("filter"))
def test_filter_contract(name, target_muons):
    from shipfastsim.components import ChunkContext

    def decide(seed):
        context = ChunkContext(0, 0, torch.Generator().manual_seed(seed), torch.device("cpu"))
        hook = REGISTRY.stage_hook("filter", name)
        return hook(stage=_cached_stage("filter", name), batch=target_muons, context=context)

    decision = decide(3)
    assert decision.keep.dtype == torch.bool and decision.keep.shape == (len(target_muons),)
    if decision.weight is not None:
        assert decision.weight.shape == (len(target_muons),) and (decision.weight >= 0).all()
        assert torch.isfinite(decision.weight).all()
    again = decide(3)
    assert torch.equal(again.keep, decision.keep), "same seed, same decision"
    out = _run("filter", name, target_muons)
    assert len(out) == int(decision.keep.sum()) and torch.isin(out.event_id, target_muons.event_id).all()
    _assert_physical(out) if len(out) else None
    if decision.weight is None:  # a plain selection: the kept muons keep their weights
        kept = target_muons.select(decision.keep)
        assert torch.equal(_run("filter", name, target_muons, seed=3).weight, kept.weight)
    else:  # a reweighting filter keeps every weighted total unbiased (e.g. Russian roulette)
        # A generic check, so of limited power: it sees survivors left unweighted (a bias of
        # ~90 % of the weight below the cut) but not a 10 % overweight of them (~1.5
        # standard errors here); the filter's own tests check its roulette exactly.
        totals = [float(_run("filter", name, target_muons, seed=seed).weight.sum()) for seed in range(N_SEEDS)]
        _assert_unbiased(totals, float(target_muons.weight.sum()), name)


def test_every_kind_has_a_contract():
    """Every kind has a registered component, so that no contract runs over nothing."""
    assert all(REGISTRY.names(kind) for kind in ("generator", "propagator", "augmenter", "filter"))
