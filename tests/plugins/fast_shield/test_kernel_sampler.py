"""fast-shield's sampler arrays hold the step tables in float32 (half the memory a step reads):
exact, since the tables are float16 on disk, so a transport gives the same muons to the last
bit as with float64 arrays."""

from __future__ import annotations

import numpy as np
import torch

from shipfastsim.plugins.fast_shield import make_transport
from shipfastsim.plugins.fast_shield.compare import target_sample


def test_float32_tables_transport_exactly_as_float64():
    transport = make_transport({})
    arrays = transport.sampler_arrays
    assert arrays.loss.dtype == np.float32 and arrays.angle.dtype == np.float32 and arrays.disp.dtype == np.float32
    batch = target_sample(3000, 6)
    pos, mom = torch.stack([batch.x, batch.y, batch.z], 1), torch.stack([batch.px, batch.py, batch.pz], 1)

    def run():
        result = transport.propagate(pos, mom, batch.charge, ["shield_end"], torch.Generator().manual_seed(6))
        return result.reached["shield_end"].numpy(), result.state["shield_end"].numpy(), result.steps_per_muon.numpy()

    reached, state, steps = run()
    transport.sampler_arrays = arrays._replace(**{name: getattr(arrays, name).astype(np.float64)
                                                  for name in ("loss", "loss_log", "loss_geometric", "angle", "disp")})
    wide_reached, wide_state, wide_steps = run()
    assert reached.sum() > 1500
    np.testing.assert_array_equal(reached, wide_reached)
    np.testing.assert_array_equal(steps, wide_steps)
    np.testing.assert_array_equal(state[reached], wide_state[reached])
