"""Labels of the training sample: nested, reproducible, extendable in parts, and P1/P2
equal to the geometric rule applied by hand to fast-shield's states at the vessel."""

import numpy as np
import torch
import yaml

from shipfastsim.configs import DEFAULT_GEOMETRY
from shipfastsim.plugins.fast_shield import COMPONENT, make_transport
from shipfastsim.plugins.mlp_filter.labels import label_states, label_target_muons

N, COPIES, CHUNK = 200, 2, 100


def test_labels_are_nested_reproducible_and_extend_in_parts():
    whole = label_target_muons(N, copies=COPIES, seed=7, chunk=CHUNK)
    assert len(whole) == N * COPIES and np.array_equal(np.unique(whole.group), np.arange(N))
    p1, p2, end = whole.labels["P1"], whole.labels["P2"], whole.labels["shield_end"]
    assert not (p2 & ~p1).any() and not (p1 & ~end).any(), "P2 within P1 within the shield-end muons"
    second = label_target_muons(N - CHUNK, copies=COPIES, seed=7, chunk=CHUNK, first_muon=CHUNK)
    tail = slice(CHUNK * COPIES, None)
    assert np.array_equal(second.state, whole.state[tail]) and np.array_equal(second.group, whole.group[tail])
    assert all(np.array_equal(second.labels[k], whole.labels[k][tail]) for k in whole.labels)


def test_the_sample_records_what_it_was_made_from():
    """The provenance the trained filter will carry: geometry, truth and target generator."""
    from shipfastsim.plugins.fast_shield import DEFAULT_TABLES
    from shipfastsim.plugins.gan_target import BUNDLED_WEIGHTS
    from shipfastsim.plugins.mlp_filter.labels import concat_labelled
    from shipfastsim.provenance import file_digest, geometry_digest

    first = label_target_muons(CHUNK, copies=COPIES, seed=7, chunk=CHUNK)
    record = first.meta["provenance"]
    assert record["geometry"]["name"] == "TRY_2026"  # fast-shield's default geometry
    assert record["geometry"]["digest"] == geometry_digest(DEFAULT_GEOMETRY)
    assert record["truth"] == {"propagator": "fast-shield", "tables": DEFAULT_TABLES.name,
                               "tables_digest": file_digest(DEFAULT_TABLES),
                               # fast-shield's documented default step control [cm, GeV/c]
                               "steps": {"dense_step": 20.0, "long_step": 40.0, "air_step": 40.0,
                                         "min_momentum": 0.5}}
    assert record["target_generator"]["model_digest"] == file_digest(BUNDLED_WEIGHTS)
    second = label_target_muons(CHUNK, copies=COPIES, seed=8, chunk=CHUNK)
    assert concat_labelled([first, second]).meta["provenance"]["sample_seeds"] == [7, 8]


def test_p1_and_p2_follow_the_vessel_dimensions_of_the_geometry_file():
    """`label_states` against the rule written out by hand with the numbers of the YAML, on the
    same transported states.  The muons start in the air 112 cm before the vessel, spread
    over and beyond its entrance, so that both outcomes of P1 and P2 are common."""
    rng = np.random.default_rng(5)
    n = 2000
    tx, ty, p = rng.uniform(-0.06, 0.06, n), rng.uniform(-0.06, 0.06, n), rng.uniform(20.0, 200.0, n)
    pz = p / np.sqrt(1 + tx**2 + ty**2)
    state = torch.as_tensor(np.stack([rng.uniform(-90, 90, n), rng.uniform(-220, 220, n), np.full(n, 3200.0),
                                      tx * pz, ty * pz, pz, rng.choice([-1.0, 1.0], n)], axis=1))
    transport = make_transport(COMPONENT.defaults())
    labels = label_states(transport, state, torch.Generator().manual_seed(11))
    doc = yaml.safe_load(DEFAULT_GEOMETRY.read_text())
    vessel = doc["decay_vessel"]
    plane = next(p for p in doc["planes"] if p["name"] == vessel["plane"])
    hits = transport.propagate(state[:, :3], state[:, 3:6], state[:, 6], ["shield_end", plane["name"]],
                               torch.Generator().manual_seed(11))
    at, reached = hits.state[plane["name"]].numpy(), hits.reached[plane["name"]].numpy()
    x, y, px, py, pz = at[:, 0], at[:, 1], at[:, 3], at[:, 4], at[:, 5]
    p1 = reached & (np.abs(x) <= plane["aperture_half_x"]) & (np.abs(y) <= plane["aperture_half_y"])
    x_exit, y_exit = x + px / pz * vessel["length"], y + py / pz * vessel["length"]
    p2 = p1 & (np.abs(x_exit) <= vessel["exit_half_x"]) & (np.abs(y_exit) <= vessel["exit_half_y"])
    print(f"{n} muons: {int(reached.sum())} at the vessel, {int(p1.sum())} P1, {int(p2.sum())} P2")
    assert 200 < p1.sum() < n - 200 and 100 < p2.sum() < p1.sum() - 100, "both outcomes are exercised"
    assert np.array_equal(p1, labels["P1"]) and np.array_equal(p2, labels["P2"])
