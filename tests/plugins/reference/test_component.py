"""The ``reference-shield`` propagator through the plugin hook, and its summary."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.components import ChunkContext, Stage
from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.data import TARGET_SAMPLE
from shipfastsim.plugins.reference.plugin import COMPONENT
from shipfastsim.plugins.reference.summary import format_summary, summary_from_counters
from shipfastsim.registry import get_registry


def _stage() -> Stage:
    params = COMPONENT.defaults() | {"geometry": str(GEOMETRY_DIR / "test_short_shield.yaml")}
    return Stage(kind="propagator", component="reference-shield", params=params)


def _call(stage, batch, plane, seed):
    context = ChunkContext(chunk_index=0, first_muon=0, generator=torch.Generator().manual_seed(seed),
                           device=torch.device("cpu"))
    out = get_registry().hook.shipfastsim_propagate_muons(stage=stage, batch=batch, plane=plane, context=context)
    return out, context.counters


@pytest.fixture(scope="module")
def batch():
    full, _ = read_ntuple(TARGET_SAMPLE)
    return full.select(torch.arange(300))


def test_hook_returns_muons_on_the_plane(batch):
    assert get_registry().get("propagator", "reference-shield") is not None
    stage = _stage()
    out, counters = _call(stage, batch, "shield_end", 1)
    # 7 m of iron: muons of 16-360 GeV/c nearly all pass, about 16 GeV/c poorer.
    assert 0.95 * len(batch) <= len(out) <= len(batch)
    assert out.p.mean() < batch.p.mean() - 10.0
    assert torch.allclose(out.z, torch.full_like(out.z, 900.0))
    assert torch.all(out.p < 400.0) and torch.all(out.pz > 0)
    # weights and provenance travel with the muons
    assert set(out.event_id.tolist()) <= set(batch.event_id.tolist())
    generated = sum(v for k, v in counters.items() if k.endswith("/generated"))
    reached = sum(v for k, v in counters.items() if k.endswith("/shield_end"))
    assert generated == len(batch) and reached == len(out)
    table = summary_from_counters(counters)
    print(format_summary(table))
    assert set(table) == {"mu+", "mu-"}
    n_plus = table["mu+"]["all"]["generated"]
    assert n_plus == int((batch.pdg_id == -13).sum())
    again, _ = _call(stage, batch, "shield_end", 1)
    assert out.equals(again)  # the context generator is the only randomness
    other, _ = _call(stage, batch, "shield_end", 2)
    assert not torch.equal(other.x, out.x) if len(other) == len(out) else True


def test_other_plane_and_unknown_plane(batch):
    stage = _stage()
    out, counters = _call(stage, batch, "decay_vessel", 1)
    assert torch.allclose(out.z, torch.full_like(out.z, 1000.0))
    assert sum(v for k, v in counters.items() if k.endswith("decay_vessel:aperture")) <= len(out)
    with pytest.raises(KeyError, match="no recording plane"):
        _call(stage, batch, "nowhere", 1)


def test_other_components_are_ignored(batch):
    stage = Stage(kind="propagator", component="something-else", params={})
    context = ChunkContext(0, 0, torch.Generator(), torch.device("cpu"), Counter())
    from shipfastsim.plugins.reference import plugin

    assert plugin.shipfastsim_propagate_muons(stage=stage, batch=batch, plane="shield_end", context=context) is None
