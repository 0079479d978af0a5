"""YAML production configs: loading, validation against a versioned schema, defaults.

Every problem with a config is reported as one `ConfigError` naming the key path
(``stages[1].params.copies: -3 is below the minimum 1``) before anything runs.
The structure is checked against ``schemas/config-v1.json``; stage parameters
against the `Parameter` lists that plugins declare.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from shipfastsim.components import STAGE_KINDS, ComponentSpec, Parameter, Stage
from shipfastsim.normalisation import SHIP_PROTONS_PER_SPILL
from shipfastsim.registry import ComponentRegistry, get_registry
from shipfastsim.units import NTUPLE_Z_SHIFT

__all__ = ["ConfigError", "RunConfig", "OutputConfig", "ExecutorConfig", "load_config", "validate_document",
           "make_stage", "SCHEMA_VERSION", "schema"]

SCHEMA_VERSION = 1
_SCHEMA_PATH = Path(__file__).with_name("schemas") / f"config-v{SCHEMA_VERSION}.json"


class ConfigError(ValueError):
    """A config that cannot run; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


def schema() -> dict[str, Any]:
    """The JSON schema of the current config version."""
    return json.loads(_SCHEMA_PATH.read_text())


@dataclass(frozen=True)
class OutputConfig:
    """Where and how muons are written (see the ``run.output`` schema)."""

    path: Path
    format: str = "fairship-root"
    muons_per_file: int | None = None
    compression: str = "zstd"
    compression_level: int = 1
    target_z0: float = 0.0
    #: cm FairShip adds to ship_geo.target.z0 when placing ntuple z (primGen.SetTarget).
    ntuple_z_offset: float = NTUPLE_Z_SHIFT


@dataclass(frozen=True)
class ExecutorConfig:
    """How chunks are spread: ``serial`` in this process, or ``dask`` workers: a local
    cluster, a running scheduler (``address``) or batch jobs (``cluster``: htcondor,
    slurm; the other fields size each job).  See `shipfastsim.executors`."""

    type: str = "serial"
    workers: int = 2  # worker processes (local, or in all batch jobs together)
    address: str | None = None
    cluster: str = "local"
    cores: int = 1  # per batch job
    processes: int | None = None  # worker processes per batch job (default: one per core)
    memory: str | None = None  # per batch job, e.g. "4GB"
    walltime: str | None = None  # [D-]HH:MM[:SS]
    disk: str | None = None  # HTCondor scratch disk per job
    queue: str | None = None  # SLURM partition
    account: str | None = None  # SLURM account, HTCondor accounting group
    job_extra_directives: list[str] | dict[str, str] | None = None  # SLURM: sbatch options; HTCondor: submit commands
    job_script_prologue: tuple[str, ...] = ()  # shell lines run before the worker (environment setup)
    python: str | None = None  # interpreter on the batch nodes (default: this one)
    log_directory: str | None = None
    local_directory: str | None = None


@dataclass
class RunConfig:
    """A validated production config with defaults filled in and paths absolute."""

    events: int
    chunk_size: int
    seed: int
    device: torch.device
    output: OutputConfig
    stages: list[Stage]
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    #: protons on target per spill the weights refer to (``run.normalisation``).
    protons_per_spill: float = SHIP_PROTONS_PER_SPILL
    source: Path | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_chunks(self) -> int:
        return -(-self.events // self.chunk_size)

    def fingerprint(self) -> str:
        """Hash of everything that determines the output muons (not the executor)."""
        relevant = copy.deepcopy(self.document)
        relevant["run"].pop("executor", None)
        relevant["stages"] = [{"kind": s.kind, "component": s.component, "params": s.params} for s in self.stages]
        text = json.dumps(relevant, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- structural validation -------------------------------------------------------------
def _key(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_error(error) -> ConfigError:
    key = _key(error.absolute_path)
    where = key or "config"
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed), key=str)
        return ConfigError(where, f"unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return ConfigError(where, f"missing required key {missing[0]!r}")
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return ConfigError(where, f"expected {expected}, got {type(error.instance).__name__} {error.instance!r}")
    if error.validator == "minimum":
        return ConfigError(where, f"{error.instance!r} is below the minimum {error.validator_value}")
    if error.validator == "exclusiveMinimum":
        return ConfigError(where, f"{error.instance!r} must be above {error.validator_value}")
    if error.validator == "maximum":
        return ConfigError(where, f"{error.instance!r} is above the maximum {error.validator_value}")
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return ConfigError(where, f"{error.instance!r} is not allowed; allowed values: {allowed}")
    if error.validator == "const":
        return ConfigError(where, f"{error.instance!r} is not supported; this shipfastsim reads "
                                  f"version {SCHEMA_VERSION}")
    if error.validator == "pattern":
        return ConfigError(where, f"{error.instance!r} is not valid; allowed: cpu, cuda, cuda:N")
    if error.validator in ("minItems", "minProperties"):
        return ConfigError(where, "must not be empty")
    if error.validator == "minLength":
        return ConfigError(where, "must not be empty")
    return ConfigError(where, error.message)


def _check_structure(document: Any) -> None:
    import jsonschema

    if not isinstance(document, dict):
        raise ConfigError("", f"a config is a YAML mapping, got {type(document).__name__}")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        raise _schema_error(errors[0])


# ---- stage parameters ------------------------------------------------------------------
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
        from shipfastsim.file_checks import check_file

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


def _stage_params(spec: ComponentSpec, given: dict[str, Any], key: str, base: Path) -> dict[str, Any]:
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
    from shipfastsim.file_checks import geometry_planes

    for parameter in spec.parameters:
        if parameter.content == "geometry" and params.get(parameter.name):
            planes = geometry_planes(params[parameter.name])
            if plane not in planes:
                raise ConfigError(key, f"{plane!r} is not a recording plane of {params[parameter.name]}; "
                                       f"allowed: {', '.join(planes)}")


def _build_stages(document: dict[str, Any], registry: ComponentRegistry, base: Path,
                  device: torch.device) -> list[Stage]:
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
        params = _stage_params(registered.spec, entry.get("params") or {}, f"{key}.params", base)
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
    values = _stage_params(registered.spec, params or {}, "params", base or Path.cwd())
    if kind == "propagator":
        values["plane"] = plane
    return Stage(kind=kind, component=component, params=values, device=torch.device(device))


# ---- entry points ----------------------------------------------------------------------
def _apply_overrides(document: Any, overrides: dict[str, Any]) -> None:
    if not isinstance(document, dict):
        return
    for dotted, value in overrides.items():
        if value is None:
            continue
        target = document
        *parents, last = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {}) if isinstance(target, dict) else target
        if isinstance(target, dict):
            target[last] = value


def validate_document(document: Any, base: Path, registry: ComponentRegistry | None = None) -> RunConfig:
    """Validate a parsed config (relative paths resolve against ``base``)."""
    _check_structure(document)
    registry = registry or get_registry()
    run = document["run"]
    device = torch.device(run.get("device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device", f"{device} asked for, but torch sees no CUDA device; allowed here: cpu")
    out = run["output"]
    output_path = Path(out["path"]).expanduser()
    output = OutputConfig(
        path=(output_path if output_path.is_absolute() else base / output_path).resolve(),
        **{k: v for k, v in out.items() if k != "path"},
    )
    stages = _build_stages(document, registry, base, device)
    from shipfastsim.provenance import check_stages  # models trained for another geometry are refused

    if problem := check_stages(stages, registry, document):
        raise ConfigError(*problem)
    return RunConfig(
        events=run["events"],
        chunk_size=run.get("chunk_size", 100_000),
        seed=run.get("seed", 0),
        device=device,
        output=output,
        stages=stages,
        executor=_executor(run.get("executor", {})),
        protons_per_spill=float(run.get("normalisation", {}).get("protons_per_spill", SHIP_PROTONS_PER_SPILL)),
        document=document,
    )


def _executor(section: dict[str, Any]) -> ExecutorConfig:
    from shipfastsim.executors import check_executor

    executor = ExecutorConfig(**{k: tuple(v) if k == "job_script_prologue" else v for k, v in section.items()})
    check_executor(executor)
    return executor


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                registry: ComponentRegistry | None = None) -> RunConfig:
    """Read, override (dotted keys such as ``run.events``) and validate a YAML config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"config file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"{path} is not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    _apply_overrides(document, overrides or {})
    config = validate_document(document, path.resolve().parent, registry)
    config.source = path.resolve()
    return config
