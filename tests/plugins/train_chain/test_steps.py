"""The steps of ``train chain``: markers, resuming after an interruption, refusing other arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shipfastsim.cli import main
from shipfastsim.errors import UsageError
from shipfastsim.plugins.mlp_filter.labels import LabelledMuons, save_labelled
from shipfastsim.plugins.train_chain.sample import SampleSettings
from shipfastsim.plugins.train_chain.steps import MARKER, STEPS, TRAINERS, ChainSettings
from tests.plugins.train_chain.conftest import chain_arguments


def test_an_interrupted_chain_resumes_without_redoing_finished_steps(resumed_chain):
    output = resumed_chain["output"]
    # the first run made the sample and nf-after-shield, then stopped in nf-decay-vessel
    assert resumed_chain["first_calls"] == {"sample": 1, "nf-after-shield": 1}
    before = resumed_chain["times_after_first"]
    assert (output / "sample" / MARKER).relative_to(output) in before
    assert Path("nf-decay-vessel") / MARKER not in before
    # the rerun did only what was left
    assert resumed_chain["second_calls"] == {"nf-decay-vessel": 1, "mlp-filter": 1}
    for name in ("sample/sample.npz", "sample/training_data.npz", "sample/labelled_muons.npz",
                 "nf-after-shield/nf_after_shield.safetensors"):
        path = output / name
        assert path.stat().st_mtime_ns == before[path.relative_to(output)], f"{name} was made again"
    assert all((output / step / MARKER).is_file() for step in STEPS)


def test_a_finished_chain_reruns_nothing(resumed_chain, monkeypatch, capsys):
    from shipfastsim.plugins.train_chain import steps

    def refuse(*args, **kwargs):
        raise AssertionError("a finished step ran again")

    monkeypatch.setattr(steps, "make_sample", refuse)
    for name in steps.TRAINERS:
        monkeypatch.setitem(steps.TRAINERS, name, refuse)
    report = resumed_chain["output"] / "report" / "report.json"
    written = report.stat().st_mtime_ns
    assert main(chain_arguments(resumed_chain["geometry"], resumed_chain["output"])) == 0
    assert report.stat().st_mtime_ns == written
    assert "report:" in capsys.readouterr().out


def test_a_rerun_with_other_arguments_is_refused_naming_them(resumed_chain, capsys):
    output = resumed_chain["output"]
    recorded = (output / "chain.json").read_text()
    status = main(chain_arguments(resumed_chain["geometry"], output, **{"--muons": "4000", "--max-steps": "41"}))
    error = capsys.readouterr().err
    assert status == 2
    assert "muons 4000 (recorded 3000)" in error and "flow_steps 41 (recorded 40)" in error
    assert "copies" not in error  # only what differs is named
    assert (output / "chain.json").read_text() == recorded
    assert json.loads(recorded)["sample"]["muons"] == 3000


def test_a_sample_too_small_for_the_filter_is_a_usage_error(tmp_path, vessel_geometry):
    n = 200
    p1 = np.arange(n) < 3  # three P1 muons: too few for any working point
    state = np.tile(np.array([0, 0, 0, 0.1, 0.1, 50.0, 1.0], np.float32), (n, 1))
    save_labelled(LabelledMuons(state, np.arange(n), {"shield_end": np.ones(n, bool), "P1": p1, "P2": p1},
                                np.ones(n), {}), tmp_path / "labelled_muons.npz")
    settings = ChainSettings(SampleSettings(geometry=str(vessel_geometry), truth="fast-shield"))
    with pytest.raises(UsageError, match="more --muons"):
        TRAINERS["mlp-filter"](settings, tmp_path, tmp_path / "filter", False)


def test_each_model_keeps_its_held_out_rows(resumed_chain):
    """nf-after-shield's folder holds its test sample: rows of its trainer's holdout split only
    (by target muon), every held-out P1 row among them, and the split's row count."""
    from shipfastsim.plugins.nf_after_shield.cli import HOLDOUT_SHIELD_END
    from shipfastsim.plugins.nf_after_shield.data import load_training_data, split_indices

    output = resumed_chain["output"]
    data = load_training_data(output / "sample" / "training_data.npz")
    holdout = split_indices(data.groups())["holdout"]
    with np.load(output / "nf-after-shield" / HOLDOUT_SHIELD_END) as saved:
        assert int(saved["holdout_rows"]) == len(holdout)
        assert set(saved["event_id"]) <= set(data.groups()[holdout])
        assert int((saved["label"] >= 1).sum()) == int((data.label[holdout] >= 1).sum()) > 0
    assert (output / "nf-decay-vessel" / "holdout_decay_vessel.npz").is_file()
    assert (output / "mlp-filter" / "mlp_filter_holdout.npz").is_file()


def test_nf_decay_vessel_never_trains_on_its_holdout(resumed_chain):
    """The report's nf-decay-vessel gates use its holdout split: the trainer must leave it out."""
    import json

    document = json.loads((resumed_chain["output"] / "nf-decay-vessel" / "nf_decay_vessel.json").read_text())
    assert document["training"]["train_on_holdout_split"] is False


def test_patience_reaches_both_flows(monkeypatch, tmp_path, vessel_geometry):
    """``--patience 3`` is recorded with the chain's arguments and given to both flows'
    trainers (the trainers themselves are replaced here: only the wiring is tested)."""
    from shipfastsim.cli import build_parser
    from shipfastsim.plugins.nf_after_shield import cli as nf_cli
    from shipfastsim.plugins.nf_after_shield import decay_vessel
    from shipfastsim.plugins.train_chain import steps
    from shipfastsim.plugins.train_chain.cli import settings_from_arguments
    from tests.plugins.train_chain.conftest import chain_arguments

    args = build_parser().parse_args(chain_arguments(vessel_geometry, tmp_path / "out", **{"--patience": "3"}))
    settings = settings_from_arguments(args)
    assert settings.record()["training"]["patience"] == 3
    seen = {}
    monkeypatch.setattr(nf_cli, "train_nf_after_shield", lambda namespace: seen.setdefault("after", namespace.patience))
    monkeypatch.setattr(decay_vessel, "train_decay_vessel", lambda *a, **k: seen.setdefault("vessel", k["patience"]))
    steps.TRAINERS["nf-after-shield"](settings, tmp_path, tmp_path, False)
    steps.TRAINERS["nf-decay-vessel"](settings, tmp_path, tmp_path, False)
    assert seen == {"after": 3, "vessel": 3}


def test_knots_reach_the_inclusive_flows_maps(monkeypatch, tmp_path, vessel_geometry):
    """``--knots 96`` is recorded, reaches nf-after-shield's trainer and becomes the knots of
    its Gaussianising maps (`FlowConfig.knots`); nf-decay-vessel keeps its own (the trainers'
    training is replaced here: only the wiring is tested)."""
    from shipfastsim.cli import build_parser
    from shipfastsim.plugins.nf_after_shield import data as nf_data
    from shipfastsim.plugins.nf_after_shield import decay_vessel
    from shipfastsim.plugins.nf_after_shield import train as nf_train
    from shipfastsim.plugins.train_chain import steps
    from shipfastsim.plugins.train_chain.cli import settings_from_arguments
    from tests.plugins.train_chain.conftest import chain_arguments

    args = build_parser().parse_args(chain_arguments(vessel_geometry, tmp_path / "out", **{"--knots": "96"}))
    settings = settings_from_arguments(args)
    assert settings.record()["training"]["knots"] == 96

    class Trained(Exception):
        pass

    def capture(data, config, progress=False):
        raise Trained(config.flow.knots)

    monkeypatch.setattr(nf_data, "load_training_data", lambda path: None)
    monkeypatch.setattr(nf_train, "train_flow", capture)
    with pytest.raises(Trained) as trained:
        steps.TRAINERS["nf-after-shield"](settings, tmp_path, tmp_path, False)
    assert trained.value.args == (96,)
    seen = {}
    monkeypatch.setattr(decay_vessel, "train_decay_vessel", lambda *a, **k: seen.update(k))
    steps.TRAINERS["nf-decay-vessel"](settings, tmp_path, tmp_path, False)
    assert "knots" not in seen


def test_a_sample_step_killed_after_the_transport_resumes_from_its_sample(resumed_chain, monkeypatch, tmp_path):
    """Killed after ``sample.npz`` was written (here: writing the filter's file fails), the
    sample step's rerun makes ``training_data.npz`` and ``labelled_muons.npz`` from it without
    transporting again, identical to those of the uninterrupted chain with the same arguments."""
    from shipfastsim.cli import build_parser
    from shipfastsim.plugins.mlp_filter import labels
    from shipfastsim.plugins.nf_after_shield.data import load_training_data
    from shipfastsim.plugins.train_chain import steps
    from shipfastsim.plugins.train_chain.cli import settings_from_arguments
    from tests.plugins.train_chain.conftest import Interrupted, chain_arguments

    settings = settings_from_arguments(build_parser().parse_args(
        chain_arguments(resumed_chain["geometry"], tmp_path / "out")))
    directory = tmp_path / "sample"
    directory.mkdir()
    real_save = labels.save_labelled

    def killed(*args, **kwargs):
        raise Interrupted("planted: the run is killed writing labelled_muons.npz")

    monkeypatch.setattr(labels, "save_labelled", killed)
    with pytest.raises(Interrupted):
        steps._sample_step(settings, directory, 1, False)
    assert (directory / "sample.npz").is_file() and not (directory / "labelled_muons.npz").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("the sample was transported again")

    monkeypatch.setattr(labels, "save_labelled", real_save)
    monkeypatch.setattr(steps, "make_sample", refuse)
    steps._sample_step(settings, directory, 1, False)
    uninterrupted = resumed_chain["output"] / "sample"
    resumed, expected = load_training_data(directory / "training_data.npz"), \
        load_training_data(uninterrupted / "training_data.npz")
    assert np.array_equal(resumed.state, expected.state) and np.array_equal(resumed.label, expected.label)
    resumed, expected = labels.load_labelled(directory / "labelled_muons.npz"), \
        labels.load_labelled(uninterrupted / "labelled_muons.npz")
    assert np.array_equal(resumed.state, expected.state)
    assert all(np.array_equal(resumed.labels[k], expected.labels[k]) for k in expected.labels)


def test_the_filter_learns_from_the_first_filter_muons(resumed_chain, monkeypatch, tmp_path):
    """``--filter-muons 1000``: mlp-filter's trainer gets every copy of generated muons 0-999
    of the sample and nothing else (its trainer is replaced here: only the selection is tested)."""
    from shipfastsim.cli import build_parser
    from shipfastsim.plugins.mlp_filter import cli as filter_cli
    from shipfastsim.plugins.mlp_filter.labels import load_labelled
    from shipfastsim.plugins.train_chain.cli import settings_from_arguments
    from tests.plugins.train_chain.conftest import chain_arguments

    settings = settings_from_arguments(build_parser().parse_args(
        chain_arguments(resumed_chain["geometry"], tmp_path / "out", **{"--filter-muons": "1000"})))
    assert settings.record()["training"]["filter_muons"] == 1000
    seen = {}
    monkeypatch.setattr(filter_cli, "train_mlp_filter", lambda arguments, sample: seen.setdefault("sample", sample))
    TRAINERS["mlp-filter"](settings, resumed_chain["output"] / "sample", tmp_path, False)
    everything = load_labelled(resumed_chain["output"] / "sample" / "labelled_muons.npz")
    first = everything.group < 1000
    assert 0 < first.sum() < len(everything)
    assert np.array_equal(seen["sample"].state, everything.state[first])
    assert np.array_equal(seen["sample"].labels["P1"], everything.labels["P1"][first])
    assert seen["sample"].meta["filter_muons"] == 1000
