"""Stage entries of a config: each component's parameters checked against its declaration.

A plugin declares its components' `Parameter` lists; here every given value is checked
and coerced (type, choices, minimum), every file parameter resolved and checked for its
kind (`shipfastsim.file_checks`), a propagator's plane checked against its geometry and
the component's own ``check`` run.  Each problem is one `ConfigError` naming the key
(``stages[1].params.copies``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from shipfastsim.components import STAGE_KINDS, ComponentSpec, Parameter, Stage
from shipfastsim.errors import ConfigError
from shipfastsim.file_checks import check_file, geometry_planes
from shipfastsim.registry import ComponentRegistry, get_registry

__all__ = ["build_stages", "make_stage", "stage_params"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _resolve_path(value: Any, key: str, base: Path, content: str | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"expected a file path, got {value!r}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(key, f"file not found: {path}")
    if content is not None:
        problem = check_file(content, path)
        if problem:
            raise ConfigError(key, problem)
    return str(path.resolve())


def _coerce(parameter: Parameter, value: Any, key: str, base: Path) -> Any:
    kind = parameter.type
    if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if kind == "float":
        if not _is_number(value):
            raise ConfigError(key, f"expected a number, got {value!r}")
        value = float(value)
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {value!r}")
    if kind == "choice" and value not in parameter.choices:
        raise ConfigError(key, f"{value!r} is not allowed; allowed values: {', '.join(map(str, parameter.choices))}")
    if kind == "floats":
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            raise ConfigError(key, f"expected a list of numbers, got {value!r}")
        value = [float(v) for v in value]
    if kind == "path":
        value = _resolve_path(value, key, base, parameter.content)
    if kind == "paths":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise ConfigError(key, f"expected a non-empty list of file paths, got {value!r}")
        value = [_resolve_path(v, f"{key}[{i}]", base, parameter.content) for i, v in enumerate(value)]
    if parameter.minimum is not None and kind in ("int", "float") and value < parameter.minimum:
        raise ConfigError(key, f"{value!r} is below the minimum {parameter.minimum}")
    return value


def stage_params(spec: ComponentSpec, given: dict[str, Any], key: str, base: Path) -> dict[str, Any]:
    """A stage's parameters ``given`` under config key ``key``, checked against ``spec``'s
    declaration and completed with its defaults."""
    declared = {p.name: p for p in spec.parameters}
    for name in given:
        if name not in declared:
            allowed = ", ".join(declared) or "none"
            raise ConfigError(f"{key}.{name}", f"unknown parameter of {spec.kind} {spec.name!r}; allowed: {allowed}")
    params = {}
    for name, parameter in declared.items():
        if name in given:
            params[name] = _coerce(parameter, given[name], f"{key}.{name}", base)
        elif parameter.required:
            raise ConfigError(f"{key}.{name}", f"required parameter of {spec.kind} {spec.name!r} is missing")
        else:
            # Plugin defaults are trusted values, but path defaults must still exist.
            default = parameter.default
            params[name] = _coerce(parameter, default, f"{key}.{name}", base) if parameter.type in (
                "path", "paths") and default is not None else copy.deepcopy(default)
    return params


def _check_plane(spec: ComponentSpec, params: dict[str, Any], plane: str, key: str) -> None:
    """A propagator's plane must be a recording plane of its geometry (a ``geometry`` file parameter)."""
    for parameter in spec.parameters:
        if parameter.content == "geometry" and params.get(parameter.name):
            planes = geometry_planes(params[parameter.name])
            if plane not in planes:
                raise ConfigError(key, f"{plane!r} is not a recording plane of {params[parameter.name]}; "
                                       f"allowed: {', '.join(planes)}")


def build_stages(document: dict[str, Any], registry: ComponentRegistry, base: Path,
                 device: torch.device) -> list[Stage]:
    """The validated stages of a config ``document`` (relative paths against ``base``)."""
    stages = []
    for index, entry in enumerate(document["stages"]):
        key = f"stages[{index}]"
        kinds = [k for k in STAGE_KINDS if k in entry]
        if len(kinds) != 1:
            raise ConfigError(key, f"give exactly one of {', '.join(STAGE_KINDS)} (found {kinds or 'none'})")
        kind = kinds[0]
        if (index == 0) != (kind == "generator"):
            raise ConfigError(f"{key}.{kind}", "the first stage, and only the first, must be a generator")
        if kind == "propagator" and "plane" not in entry:
            raise ConfigError(key, "missing required key 'plane' (the recording plane to propagate to)")
        if kind != "propagator" and "plane" in entry:
            raise ConfigError(f"{key}.plane", "only propagator stages take a plane")
        name = entry[kind]
        registered = registry.get(kind, name)
        if registered is None:
            known = ", ".join(registry.names(kind)) or "none"
            raise ConfigError(f"{key}.{kind}", f"unknown {kind} {name!r}; registered: {known}")
        params = stage_params(registered.spec, entry.get("params") or {}, f"{key}.params", base)
        if kind == "propagator":
            _check_plane(registered.spec, params, entry["plane"], f"{key}.plane")
            params["plane"] = entry["plane"]  # before the component's check, which may use it
        if registered.spec.check is not None:
            problem = registered.spec.check(params, document["run"])
            if isinstance(problem, tuple):  # (parameter name, message)
                raise ConfigError(f"{key}.params.{problem[0]}", problem[1])
            if problem:
                raise ConfigError(f"{key}.params", problem)
        stages.append(Stage(kind=kind, component=name, params=params, device=device, index=index))
    return stages


def make_stage(kind: str, component: str, params: dict[str, Any] | None = None, plane: str | None = None,
               device: str | torch.device = "cpu", registry: ComponentRegistry | None = None,
               base: Path | None = None) -> Stage:
    """A validated `Stage` outside a config file (for notebooks, tests and benchmarks)."""
    registered = (registry or get_registry()).get(kind, component)
    if registered is None:
        raise ConfigError(kind, f"unknown {kind} {component!r}")
    values = stage_params(registered.spec, params or {}, "params", base or Path.cwd())
    if kind == "propagator":
        values["plane"] = plane
    return Stage(kind=kind, component=component, params=values, device=torch.device(device))
