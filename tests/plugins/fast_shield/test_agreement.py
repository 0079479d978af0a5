"""fast-shield against the reference transport on the same phi-augmented target muons.

CI size (a few thousand muons, the reference is slow); the >= 10^5 comparison is
``benchmarks/compare_fast_shield.py``.
"""

import pytest

from shipfastsim.plugins.fast_shield.compare import (
    FEATURES,
    distribution_metrics,
    fraction_table,
    run_fast,
    run_reference,
    state_features,
    target_sample,
)

N_MUONS = 6000
PLANES = ["shield_end", "decay_vessel"]


@pytest.fixture(scope="module")
def transported():
    batch = target_sample(N_MUONS, seed=11)
    return batch, run_reference(batch, PLANES, seed=12), run_fast(batch, PLANES, seed=13)


@pytest.mark.parametrize("what", ["shield_end", "aperture"])
def test_fractions_agree_per_charge_and_momentum_bin(transported, what):
    batch, ref, fast = transported
    if what == "shield_end":
        rows = fraction_table(batch, ref.reached["shield_end"], fast.reached["shield_end"])
    else:
        rows = fraction_table(batch, ref.in_aperture["decay_vessel"], fast.in_aperture["decay_vessel"])
    for row in rows:
        print(f"{what} q={row.charge:+d} p=[{row.p_low:.0f},{row.p_high:.0f}) n={row.n} "
              f"ref {row.reference:.4f}+-{row.reference_err:.4f} fast {row.fast:.4f}+-{row.fast_err:.4f} "
              f"pull {row.pull:+.2f}")
    assert all(row.n > 50 for row in rows)
    assert all(abs(row.pull) < 3.0 for row in rows)
    chi2 = sum(row.pull**2 for row in rows)
    assert chi2 < 2.0 * len(rows) + 6.0


def test_distributions_at_the_end_of_the_shield_agree(transported):
    """W1/sigma < 0.05 per feature and AUC < 0.55, with the W1 bound widened by the
    reference's own seed-to-seed W1/sigma at this sample size (the heavy-tailed y and
    py reach ~0.05 reference against reference with a few thousand muons)."""
    batch, ref, fast = transported
    again = run_reference(batch, ["shield_end"], seed=99)
    a = state_features(ref.state["shield_end"][ref.reached["shield_end"]])
    b = state_features(fast.state["shield_end"][fast.reached["shield_end"]])
    c = state_features(again.state["shield_end"][again.reached["shield_end"]])
    metrics, floor = distribution_metrics(a, b), distribution_metrics(a, c, epochs=1)
    for name in FEATURES:
        print(name, metrics["features"][name], "reference vs reference", floor["features"][name])
    print("AUC", metrics["auc"])
    for name in FEATURES:
        assert metrics["features"][name]["w1_over_sigma"] < 0.05 + floor["features"][name]["w1_over_sigma"], name
    assert metrics["auc"] < 0.55
