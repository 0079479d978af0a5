"""Registry: components attributed to the plugin that declared them, stage hooks sent to
that plugin only, duplicate names refused, declarations through pluggy, pickling."""

import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from shipfastsim import hookimpl
from shipfastsim.batch import MuonBatch
from shipfastsim.components import ComponentSpec
from shipfastsim.config import make_stage
from shipfastsim.registry import ComponentRegistry, PluginConflictError, get_plugin_manager
from shipfastsim.runner import apply_stage


class Hijacker:
    """Answers every generator and augmenter call, whatever the component (no check)."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def shipfastsim_declare_components(self):
        return [ComponentSpec("hijacker", "generator", "answers for everyone")]

    @hookimpl
    def shipfastsim_generate_muons(self, stage, n_muons, context):
        self.calls += 1
        zeros = torch.zeros(n_muons, dtype=torch.float64)
        columns = {name: zeros for name in ("x", "y", "z", "px", "py")}
        return MuonBatch.from_columns(columns | {"pdg_id": torch.full((n_muons,), 13), "pz": zeros + 1e6})

    @hookimpl
    def shipfastsim_augment_muons(self, stage, batch, context):
        self.calls += 1
        return batch.select(torch.arange(0))


class Declarer:
    """Declares one component under a chosen name and kind, implements nothing."""

    def __init__(self, name: str, kind: str = "generator"):
        self.spec = ComponentSpec(name, kind, "test")

    @hookimpl
    def shipfastsim_declare_components(self):
        return [self.spec]


def _registry(*plugins) -> ComponentRegistry:
    manager = get_plugin_manager(load_entry_points=False)
    for i, plugin in enumerate(plugins):
        manager.register(plugin, name=f"test-{i}")
    return ComponentRegistry(manager)


def test_a_plugin_cannot_answer_for_another_plugins_component(make_context, target_sample):
    hijacker = Hijacker()
    registry = _registry(hijacker)  # registered last, so pluggy would call it first
    stage = make_stage("generator", "fairship-file", {"files": [str(target_sample)]}, registry=registry)
    muons = apply_stage(registry, stage, None, 50, make_context())
    assert hijacker.calls == 0 and float(muons.pz.max()) < 1e3
    rotated = apply_stage(registry, make_stage("augmenter", "phi-rotation", {"copies": 2}, registry=registry),
                          muons, 50, make_context())
    assert hijacker.calls == 0 and len(rotated) == 100
    # Its own component still reaches it.
    apply_stage(registry, make_stage("generator", "hijacker", registry=registry), None, 5, make_context())
    assert hijacker.calls == 1


def test_owner_that_returns_nothing_is_a_clear_error(make_context):
    registry = _registry(Declarer("silent"))
    stage = make_stage("generator", "silent", registry=registry)
    with pytest.raises(PluginConflictError, match="'test-0'.*declares generator 'silent' but does not implement"):
        apply_stage(registry, stage, None, 5, make_context())


def test_same_name_from_two_plugins_names_both():
    with pytest.raises(PluginConflictError, match=r"augmenter 'phi-rotation' is declared by both plugin "
                                                  r"'phi-rotation' \(bundled\) and plugin 'test-0' \(registered\)"):
        _registry(Declarer("phi-rotation", "augmenter"))
    _registry(Declarer("phi-rotation", "generator"))  # names are unique per kind only


def test_declarations_go_through_pluggy():
    manager = get_plugin_manager(load_entry_points=False)
    seen = []
    manager.add_hookcall_monitoring(lambda name, impls, kwargs: seen.append((name, [i.plugin_name for i in impls])),
                                    lambda *args: None)
    ComponentRegistry(manager)
    declared = [impls for name, impls in seen if name == "shipfastsim_declare_components"]
    implementers = [impl.plugin_name for impl in manager.hook.shipfastsim_declare_components.get_hookimpls()]
    assert sorted(name for impls in declared for name in impls) == sorted(implementers)
    assert all(len(impls) == 1 for impls in declared), "one plugin per call, so components are attributed"


def test_registry_pickles_as_its_plugins(make_context):
    hijacker = Hijacker()
    registry = _registry(hijacker)
    copy = pickle.loads(pickle.dumps(registry))
    assert copy is not registry and copy.token == registry.token
    assert [c.spec.name for c in copy.all()] == [c.spec.name for c in registry.all()]
    assert pickle.loads(pickle.dumps(registry)) is copy, "rebuilt once per process"


def test_two_installed_packages_with_one_name_are_a_clear_error(tmp_path):
    package = tmp_path / "dup"
    (package / "shipfastsim_dup").mkdir(parents=True)
    (package / "shipfastsim_dup" / "__init__.py").write_text(textwrap.dedent("""
        from shipfastsim import ComponentSpec, hookimpl

        @hookimpl
        def shipfastsim_declare_components():
            return [ComponentSpec("fairship-file", "generator", "a second fairship-file")]
    """))
    (package / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "shipfastsim-dup"
        version = "0.3"
        [project.entry-points.shipfastsim]
        dup = "shipfastsim_dup"
    """))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True)
    result = subprocess.run([sys.executable, "-m", "shipfastsim", "plugins"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "shipfastsim: error: generator 'fairship-file' is declared by both plugin 'fairship-file' (bundled) and "
        "plugin 'dup' (shipfastsim-dup 0.3); uninstall one of them"]
