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
from dataclasses import dataclass
from functools import lru_cache

import pluggy

from shipfastsim import hookspecs
from shipfastsim.components import STAGE_KINDS, ComponentSpec

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "RegisteredComponent", "ComponentRegistry", "get_plugin_manager",
           "get_registry"]

ENTRY_POINT_GROUP = "shipfastsim"

#: Plugin name -> module of every bundled plugin.
DEFAULT_PLUGINS: dict[str, str] = {
    "fairship-file": "shipfastsim.plugins.fairship_file",
    "phi-rotation": "shipfastsim.plugins.phi_rotation",
    "reference-shield": "shipfastsim.plugins.reference.plugin",
    "fast-shield": "shipfastsim.plugins.fast_shield",
    "gan-target": "shipfastsim.plugins.gan_target",
}


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


class ComponentRegistry:
    """Index of the components declared by the plugins of one manager."""

    def __init__(self, manager: pluggy.PluginManager):
        self.manager = manager
        sources = {
            manager.get_name(plugin): f"{dist.project_name} {dist.version}"
            for plugin, dist in manager.list_plugin_distinfo()
        }
        self._components: dict[tuple[str, str], RegisteredComponent] = {}
        for impl in manager.hook.shipfastsim_declare_components.get_hookimpls():
            plugin_name = impl.plugin_name
            for spec in impl.function() or []:
                key = (spec.kind, spec.name)
                if spec.kind not in STAGE_KINDS:
                    raise ValueError(f"plugin {plugin_name!r} declares {spec.name!r} of unknown kind {spec.kind!r}")
                if key in self._components:
                    other = self._components[key].plugin_name
                    raise ValueError(f"{spec.kind} {spec.name!r} is declared by both {other!r} and {plugin_name!r}")
                source = "bundled" if plugin_name in DEFAULT_PLUGINS else sources.get(plugin_name, "registered")
                self._components[key] = RegisteredComponent(spec, plugin_name, source)

    @property
    def hook(self):
        return self.manager.hook

    def get(self, kind: str, name: str) -> RegisteredComponent | None:
        return self._components.get((kind, name))

    def names(self, kind: str) -> list[str]:
        """Sorted names of the registered components of one kind."""
        return sorted(name for (k, name) in self._components if k == kind)

    def all(self) -> list[RegisteredComponent]:
        """Every component, ordered by kind then name."""
        order = {kind: i for i, kind in enumerate(STAGE_KINDS)}
        return sorted(self._components.values(), key=lambda c: (order[c.spec.kind], c.spec.name))


@lru_cache(maxsize=1)
def get_registry() -> ComponentRegistry:
    """The process-wide registry (bundled plugins plus installed entry points)."""
    return ComponentRegistry(get_plugin_manager())
