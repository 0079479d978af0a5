"""configs/fast_transport.yaml runs end to end (a small slice of it) and writes an ntuple."""

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.cli import main
from shipfastsim.configs import CONFIG_DIR


def test_fast_transport_config_writes_survivors_at_the_shield_end(tmp_path):
    output = tmp_path / "fast.root"
    status = main(["run", str(CONFIG_DIR / "fast_transport.yaml"), "--events", "50", "--output", str(output),
                   "--overwrite"])
    assert status == 0 and output.is_file()
    muons, _ = read_ntuple(output)
    assert 0.4 * 5000 < len(muons) < 0.9 * 5000  # 50 muons x 100 phi copies; ~70 % reach the shield end
    assert (muons.z - 3193.0).abs().max() < 1e-3  # end of TRY_2026's Magn7; the ntuple stores float32 metres
    assert abs(float(muons.weight.sum()) - 50 * len(muons) / 5000) < 1e-9 * len(muons) + 1e-6
