"""YAML production configs: loading, validation against a versioned schema, defaults.

Every problem with a config is reported as one `ConfigError` naming the key path
(``stages[1].params.copies: -3 is below the minimum 1``) before anything runs.
The structure is checked against ``schemas/config-v1.json``; stage parameters
against the `Parameter` lists that plugins declare (`shipfastsim.stage_params`); the
executor section by `shipfastsim.executor_config`.  This layer imports nothing of the
run (executors, runner, output, command line): they import it.  `ConfigError`,
`ExecutorConfig` and `make_stage` are re-exported from their modules, since this is where
users look for them.
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

from shipfastsim.components import Stage
from shipfastsim.errors import ConfigError
from shipfastsim.executor_config import ExecutorConfig, check_executor
from shipfastsim.registry import ComponentRegistry, get_registry
from shipfastsim.stage_params import build_stages, make_stage
from shipfastsim.units import NTUPLE_Z_SHIFT, SHIP_PROTONS_PER_SPILL

__all__ = ["ConfigError", "RunConfig", "OutputConfig", "ExecutorConfig", "load_config", "validate_document",
           "make_stage", "SCHEMA_VERSION", "schema"]

SCHEMA_VERSION = 1
_SCHEMA_PATH = Path(__file__).with_name("schemas") / f"config-v{SCHEMA_VERSION}.json"


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
    stages = build_stages(document, registry, base, device)
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
