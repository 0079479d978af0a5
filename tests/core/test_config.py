"""Config validation: every malformed config gives one named error, exit status 2, no output."""

import copy
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipfastsim.cli import main
from shipfastsim.config import ConfigError, load_config, validate_document


@pytest.fixture
def base(write_config):
    return yaml.safe_load(write_config().read_text())


def _mutate(document, path, value):
    document = copy.deepcopy(document)
    target = document
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()

# (where, new value, key named in the error, words in the message)
MALFORMED = [
    (("version",), 2, "version", "version 1"),
    (("version",), _DELETE, "config", "missing required key 'version'"),
    (("run", "events"), "many", "run.events", "expected integer"),
    (("run", "events"), -10, "run.events", "below the minimum 1"),
    (("run", "events"), 0, "run.events", "below the minimum"),
    (("run", "chunk_size"), 2.5, "run.chunk_size", "expected integer"),
    (("run", "seed"), True, "run.seed", "expected integer"),
    (("run", "evnets"), 10, "run", "unknown key 'evnets'; allowed keys: events"),
    (("run",), {"events": 10, "output": {"path": "x.root"}, "zz": 1, "aa": 2}, "run", "unknown key 'aa'; allowed"),
    (("stages", 0, "params", "files"), [], "stages[0].params.files", "expected a non-empty list of file paths"),
    (("run", "device"), "gpu", "run.device", "cpu, cuda"),
    (("run", "output", "format"), "csv", "run.output.format", "allowed values: fairship-root"),
    (("run", "output", "compression"), "gzip", "run.output.compression", "zstd, zlib, lz4"),
    (("run", "output", "muons_per_file"), -1, "run.output.muons_per_file", "minimum"),
    (("run", "output", "path"), _DELETE, "run.output", "missing required key 'path'"),
    (("stages",), [], "stages", "must not be empty"),
    (("stages", 0, "generator"), "gan", "stages[0].generator", "unknown generator 'gan'; registered: "),
    (("stages", 1, "augmenter"), "phi", "stages[1].augmenter", "registered: phi-rotation"),
    (("stages", 1, "params", "copies"), -3, "stages[1].params.copies", "below the minimum 1"),
    (("stages", 1, "params", "copies"), "ten", "stages[1].params.copies", "expected an integer"),
    (("stages", 1, "params", "copy"), 3, "stages[1].params.copy", "unknown parameter of augmenter 'phi-rotation'"),
    (("stages", 0, "params", "files"), ["/no/such/file.root"], "stages[0].params.files[0]", "file not found"),
    (("stages", 0, "params", "files"), _DELETE, "stages[0].params.files", "required parameter"),
    (("stages", 0, "params", "order"), "random", "stages[0].params.order", "allowed values: sequential, sample"),
    (("stages", 1), {"augmenter": "phi-rotation", "filter": "x"}, "stages[1]", "exactly one of"),
    (("stages", 1), {"propagator": "x"}, "stages[1]", "missing required key 'plane'"),
    (("stages", 1), {"generator": "fairship-file"}, "stages[1].generator", "first stage, and only the first"),
    (("run", "events"), 10_001, "stages[0].params", "exceeds the 10000 muons"),
]


@pytest.mark.parametrize(("where", "value", "key", "words"), MALFORMED,
                         ids=[f"{'.'.join(map(str, m[0]))}={m[1]!r}"[:60] for m in MALFORMED])
def test_malformed_config_gives_named_error_and_exit_2(tmp_path, base, write_config, capsys, where, value, key,
                                                        words):
    path = write_config(_mutate(base, where, value), name="bad.yaml")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.key == key
    assert words in str(error.value)
    print(f"{key}: {error.value}")

    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shipfastsim: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists(), "a rejected config must not create output"


def test_missing_config_file_and_bad_yaml(tmp_path, write_config, capsys):
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    for raw, where in (("version: 1\nrun:\n  events: 10\n  seed: [1\nstages: []\n", "line 5, column 7"),
                       ("version: 1\nrun:\n  seed: [1\nstages: []\n", "line 4, column 7")):  # odd and even lines
        with pytest.raises(ConfigError, match=f"not valid YAML at {where}: "):
            load_config(write_config(raw=raw))


def test_overrides_replace_config_values(write_config):
    config = load_config(write_config(), {"run.events": 600, "run.seed": 11, "run.chunk_size": None})
    assert (config.events, config.seed, config.chunk_size) == (600, 11, 300)


def test_valid_config_fills_defaults_and_resolves_paths(tmp_path, write_config, target_sample):
    config = load_config(write_config())
    assert config.n_chunks == 4 and config.output.compression == "zstd"
    generator = config.stages[0]
    assert generator.params == {"files": [str(target_sample)], "order": "sequential", "wrap": False,
                                "target_z0": 0.0, "muons_per_pot": None, "muons_per_pot_source": "",
                                "weights_spill_pot": None}
    text = Path(write_config()).read_text().replace(str(target_sample), os.path.relpath(target_sample, tmp_path))
    assert load_config(write_config(raw=text)).stages[0].params["files"] == [str(target_sample)]


def test_debug_flag_shows_traceback(write_config, base):
    path = write_config(_mutate(base, ("run", "events"), -1))
    with pytest.raises(ConfigError):
        main(["--debug", "check", str(path)])


# ---- property-based: no random config produces anything but a ConfigError ------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["fairship-file", "phi-rotation", "cpu", "cuda:0"]))
_keys = st.one_of(st.text(max_size=10), st.sampled_from(
    ["version", "run", "stages", "events", "chunk_size", "seed", "device", "output", "path", "format",
     "generator", "augmenter", "propagator", "filter", "params", "copies", "files", "plane", "executor"]))
_values = st.recursive(_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_values, patch=st.dictionaries(_keys, _values, max_size=3), section=st.sampled_from(
    [(), ("run",), ("run", "output"), ("stages", 0), ("stages", 1), ("stages", 1, "params")]))
def test_no_random_config_gives_a_traceback(tmp_path, base, document, patch, section):
    for candidate in (document, _patched(base, section, patch)):
        try:
            validate_document(candidate, tmp_path)
        except ConfigError as error:
            assert str(error)


def _patched(base, section, patch):
    document = copy.deepcopy(base)
    target = document
    for part in section:
        target = target[part]
    target.update(patch)
    return document
