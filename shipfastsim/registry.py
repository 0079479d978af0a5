"""The plugin manager: bundled plugins and third-party entry points, registered alike.

Bundled plugins are modules named in `DEFAULT_PLUGINS`; third-party packages add
theirs under the ``shipfastsim`` entry-point group::

    [project.entry-points.shipfastsim]
    my-gun = "my_package.plugin"

Both end up as plugins of one `pluggy.PluginManager`; `ComponentRegistry` indexes
the components they declare.
"""

from __future__ import annotations

import importlib
import types
import uuid
from dataclasses import dataclass
from functools import lru_cache

import pluggy

from shipfastsim import hookspecs
from shipfastsim.components import STAGE_KINDS, ComponentSpec

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "STAGE_HOOKS", "RegisteredComponent", "ComponentRegistry",
           "PluginConflictError", "get_plugin_manager", "get_registry"]

ENTRY_POINT_GROUP = "shipfastsim"

#: Stage kind -> the hook that runs a stage of that kind.
STAGE_HOOKS: dict[str, str] = {
    "generator": "shipfastsim_generate_muons",
    "propagator": "shipfastsim_propagate_muons",
    "augmenter": "shipfastsim_augment_muons",
    "filter": "shipfastsim_filter_muons",
}

#: Plugin name -> module of every bundled plugin.
DEFAULT_PLUGINS: dict[str, str] = {
    "fairship-file": "shipfastsim.plugins.fairship_file",
    "phi-rotation": "shipfastsim.plugins.phi_rotation",
    "reference-shield": "shipfastsim.plugins.reference.plugin",
    "fast-shield": "shipfastsim.plugins.fast_shield",
    "geant4-shield": "shipfastsim.plugins.geant4_shield",
    "gan-target": "shipfastsim.plugins.gan_target",
    "flow-target": "shipfastsim.plugins.flow_target",
    "nf-after-shield": "shipfastsim.plugins.nf_after_shield",
    "mlp-filter": "shipfastsim.plugins.mlp_filter",
}


class PluginConflictError(RuntimeError):
    """Two plugins declare the same component, or a plugin breaks the dispatch rules."""


@dataclass(frozen=True)
class RegisteredComponent:
    """A declared component and where it comes from."""

    spec: ComponentSpec
    plugin_name: str
    source: str  # "bundled" or "<distribution> <version>"


def get_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the hookspecs, the bundled plugins and, unless told not
    to, every plugin of the ``shipfastsim`` entry-point group."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name, module in DEFAULT_PLUGINS.items():
        manager.register(importlib.import_module(module), name=name)
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


def _describe_plugin(name: str, source: str) -> str:
    return f"plugin {name!r} ({source})"


class ComponentRegistry:
    """Index of the components declared by the plugins of one manager, and the
    dispatcher of stage hooks: each stage goes to the plugin that declared its
    component, and to no other (a plugin cannot answer for another's component).

    A registry pickles as the list of its plugins (module names, or the plugin objects
    themselves), so that dask workers rebuild the very same registry.
    """

    def __init__(self, manager: pluggy.PluginManager):
        self.manager = manager
        self.token = uuid.uuid4().hex  # identifies the registry across processes
        distributions = {
            manager.get_name(plugin): f"{dist.project_name} {dist.version}"
            for plugin, dist in manager.list_plugin_distinfo()
        }
        self._components: dict[tuple[str, str], RegisteredComponent] = {}
        declare = manager.hook.shipfastsim_declare_components
        for impl in declare.get_hookimpls():
            plugin_name = impl.plugin_name
            source = "bundled" if plugin_name in DEFAULT_PLUGINS else distributions.get(plugin_name, "registered")
            # Through pluggy (hook wrappers and tracing apply), one plugin at a time so
            # that every component is attributed to the plugin that declared it.
            for specs in self._only(declare.name, impl.plugin)():
                for spec in specs or []:
                    self._add(spec, plugin_name, source)

    def _add(self, spec: ComponentSpec, plugin_name: str, source: str) -> None:
        key = (spec.kind, spec.name)
        if spec.kind not in STAGE_KINDS:
            raise PluginConflictError(f"plugin {plugin_name!r} declares {spec.name!r} of unknown kind {spec.kind!r}; "
                                      f"allowed kinds: {', '.join(STAGE_KINDS)}")
        if key in self._components:
            other = self._components[key]
            raise PluginConflictError(
                f"{spec.kind} {spec.name!r} is declared by both {_describe_plugin(other.plugin_name, other.source)} "
                f"and {_describe_plugin(plugin_name, source)}; uninstall one of them")
        self._components[key] = RegisteredComponent(spec, plugin_name, source)

    def _only(self, hook_name: str, plugin: object) -> pluggy.HookCaller:
        """The hook ``hook_name`` restricted to the implementation of ``plugin``."""
        others = [p for p in self.manager.get_plugins() if p is not plugin]
        caller = self.manager.subset_hook_caller(hook_name, others)
        strangers = [impl.plugin_name for impl in caller.get_hookimpls() if impl.plugin is not plugin]
        if strangers:  # e.g. an implementation registered under another function name (specname)
            raise PluginConflictError(f"plugin(s) {', '.join(map(repr, strangers))} implement {hook_name} in a way "
                                      "that cannot be isolated from other plugins' components")
        return caller

    @property
    def hook(self):
        return self.manager.hook

    def stage_hook(self, kind: str, name: str) -> pluggy.HookCaller:
        """The stage hook of ``kind`` restricted to the plugin that declared ``name``."""
        registered = self.get(kind, name)
        if registered is None:
            known = ", ".join(self.names(kind)) or "none"
            raise KeyError(f"unknown {kind} {name!r}; registered: {known}")
        plugin = self.manager.get_plugin(registered.plugin_name)
        hook_name = STAGE_HOOKS[kind]
        caller = self._only(hook_name, plugin)
        if not caller.get_hookimpls():
            raise PluginConflictError(f"{_describe_plugin(registered.plugin_name, registered.source)} declares "
                                      f"{kind} {name!r} but does not implement {hook_name}")
        return caller

    def get(self, kind: str, name: str) -> RegisteredComponent | None:
        return self._components.get((kind, name))

    def names(self, kind: str) -> list[str]:
        """Sorted names of the registered components of one kind."""
        return sorted(name for (k, name) in self._components if k == kind)

    def all(self) -> list[RegisteredComponent]:
        """Every component, ordered by kind then name."""
        order = {kind: i for i, kind in enumerate(STAGE_KINDS)}
        return sorted(self._components.values(), key=lambda c: (order[c.spec.kind], c.spec.name))

    def __reduce__(self):
        plugins = [(self.manager.get_name(p), p.__name__ if isinstance(p, types.ModuleType) else p)
                   for p in self.manager.get_plugins()]
        return _rebuild_registry, (self.token, plugins)


#: Registries rebuilt in this process from a pickle, by token (a worker builds each once).
_REBUILT: dict[str, ComponentRegistry] = {}


def _rebuild_registry(token: str, plugins: list[tuple[str, object]]) -> ComponentRegistry:
    if token not in _REBUILT:
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        for name, plugin in plugins:
            manager.register(importlib.import_module(plugin) if isinstance(plugin, str) else plugin, name=name)
        registry = ComponentRegistry(manager)
        registry.token = token
        _REBUILT[token] = registry
    return _REBUILT[token]


@lru_cache(maxsize=1)
def get_registry() -> ComponentRegistry:
    """The process-wide registry (bundled plugins plus installed entry points)."""
    return ComponentRegistry(get_plugin_manager())
