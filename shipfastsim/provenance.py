"""What a trained model learnt from, and the check that a config uses it where it belongs.

The JSON beside each model's weights (``X.safetensors`` -> ``X.json``) carries a
``provenance`` record:

* ``geometry``: the shield geometry of the training transport: its ``name``, ``file`` and
  content ``digest`` (`geometry_digest`: sha256 of the canonical JSON of the parsed YAML,
  so comments, whitespace and key order do not change it, any number does), and its
  ``field`` model (model, polarity, map);
* ``truth``: the propagator that labelled the sample (``fast-shield`` with its step
  tables' file digest, ``reference-shield``, or ``geant4-shield`` with the Geant4
  version and production cut);
* ``target_generator``: the generator of the target muons and its weights' digest;
* ``training_data``: files learnt from directly (with digests), for models trained on a
  sample rather than on a transport;
* ``sample_size`` (rows of the sample handed to the training, its own validation and holdout
  splits included), ``seed`` (training) and ``sample_seeds`` (the sample's transport runs);
  ``notes`` says which entries were inferred after the fact.

`check_stages` refuses a config whose models were trained for another geometry or field
model than a stage of the same config uses (the propagator's, the subset filter's, a
generator's ``geometry``), naming both; a stage with ``allow_geometry_mismatch: true``
is let through and `accepted_mismatches` lists it for the run summary.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["OVERRIDE_KEY", "accepted_mismatches", "check_stages", "describe", "file_digest", "geometry_digest",
           "geometry_record", "make_provenance", "merge_samples", "mismatches", "read_provenance", "sample_record",
           "target_record", "truth_record"]

OVERRIDE_KEY = "allow_geometry_mismatch"
"""Stage key (config schema) that runs a model on a geometry other than its training one."""

_TRUTHS = ("fast-shield", "reference-shield", "geant4-shield")


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def geometry_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a geometry YAML's content: the canonical JSON (sorted keys, no
    spaces) of the parsed document, so that comments and layout do not count."""
    import yaml

    document = yaml.safe_load(Path(path).read_text())
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def geometry_record(path: str | Path) -> dict[str, Any]:
    """Name, file, content digest and field model of a geometry YAML."""
    from shipfastsim.geometry import load_geometry

    geometry = load_geometry(path)
    field = geometry.field_model
    return {"name": geometry.name, "file": Path(path).name, "digest": geometry_digest(path),
            "field": {"model": field.model, "polarity": field.polarity,
                      "map": Path(field.map_file).name if field.map_file else None}}


def truth_record(propagator: str, tables: str | Path | None = None, geant4_version: str | None = None,
                 production_cut_mm: float | None = None,
                 steps: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The transport that made the training sample: ``fast-shield`` with its step tables
    (file name and digest) and its step control ``steps`` (``dense_step``, ``long_step``,
    ``air_step`` [cm], ``min_momentum`` [GeV/c]: the same tables give another truth with
    another step length), ``reference-shield``, or ``geant4-shield`` with the Geant4
    version and the production cut [mm]."""
    if propagator not in _TRUTHS:
        raise ValueError(f"unknown truth propagator {propagator!r}; allowed: {', '.join(_TRUTHS)}")
    record: dict[str, Any] = {"propagator": propagator}
    if propagator == "fast-shield":
        if tables is None:
            raise ValueError("a fast-shield truth needs its step tables")
        record |= {"tables": Path(tables).name, "tables_digest": file_digest(tables)}
        if steps is not None:
            record["steps"] = {name: float(value) for name, value in steps.items()}
    if propagator == "geant4-shield":
        if not geant4_version or production_cut_mm is None:
            raise ValueError("a geant4-shield truth needs the Geant4 version and the production cut [mm]")
        record |= {"geant4_version": str(geant4_version), "production_cut_mm": float(production_cut_mm)}
    return record


def target_record(generator: str, weights: str | Path | None) -> dict[str, Any]:
    """The target-muon generator of a training sample and its weights' digest."""
    return {"name": generator, "weights": Path(weights).name if weights else None,
            "model_digest": file_digest(weights) if weights else None}


def make_provenance(*, geometry: Mapping[str, Any] | None, truth: Mapping[str, Any] | None,
                    target_generator: Mapping[str, Any] | None, sample_size: int, seed: int | None,
                    sample_seeds: Sequence[int] = (), training_data: Sequence[Mapping[str, Any]] = (),
                    notes: Iterable[str] = ()) -> dict[str, Any]:
    """The ``provenance`` record of a model's JSON (see the module docstring): ``sample_size``
    rows learnt from, ``seed`` of the training, ``sample_seeds`` of the sample's transport runs."""
    return {"geometry": dict(geometry) if geometry else None, "truth": dict(truth) if truth else None,
            "target_generator": dict(target_generator) if target_generator else None,
            "training_data": [dict(d) for d in training_data], "sample_size": int(sample_size),
            "seed": seed, "sample_seeds": [int(k) for k in sample_seeds], "notes": list(notes)}


def sample_record(geometry: str | Path, truth: Mapping[str, Any], target_generator: Mapping[str, Any] | None,
                  seeds: Sequence[int]) -> dict[str, Any]:
    """What a transported training sample was made from (stored with the sample; the
    training adds its size and seed with `make_provenance`)."""
    return {"geometry": geometry_record(geometry), "truth": dict(truth),
            "target_generator": dict(target_generator) if target_generator else None,
            "sample_seeds": [int(k) for k in seeds]}


def merge_samples(records: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """One `sample_record` for samples learnt from together: their seeds joined; None when
    any is unknown; an error when they differ in geometry, truth or target generator."""
    if not records or any(r is None for r in records):
        return None
    first = dict(records[0])
    for other in records[1:]:
        for key in ("geometry", "truth", "target_generator"):
            if other.get(key) != first.get(key):
                raise ValueError(f"training samples differ in {key}: {first.get(key)} and {other.get(key)}")
    return first | {"sample_seeds": [k for r in records for k in r.get("sample_seeds", [])]}


def read_provenance(weights: str | Path) -> dict[str, Any] | None:
    """The ``provenance`` record in the JSON beside ``weights`` (None when absent)."""
    meta = Path(weights).with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("provenance")
    except (json.JSONDecodeError, AttributeError):
        return None


def _field_text(geometry: Mapping[str, Any]) -> str:
    field = geometry.get("field") or {}
    text = f"{field.get('model')}/{field.get('polarity')}"
    return text + (f" map {field['map']}" if field.get("map") else "")


def _geometry_text(geometry: Mapping[str, Any]) -> str:
    return (f"{geometry['name']} ({geometry.get('file')}, {str(geometry.get('digest'))[:19]}, "
            f"field {_field_text(geometry)})")


def describe(provenance: Mapping[str, Any] | None) -> str:
    """One line for ``shipfastsim plugins``."""
    if not provenance:
        return "no provenance recorded"
    parts = []
    if provenance.get("geometry"):
        parts.append(f"geometry {_geometry_text(provenance['geometry'])}")
    truth = provenance.get("truth")
    if truth:
        if truth.get("tables"):
            steps = truth.get("steps")
            extra = truth["tables"] + (f", long_step {steps['long_step']:g} cm" if steps else "")
        elif "geant4_version" in truth:
            extra = f"Geant4 {truth['geant4_version']}, cut {truth['production_cut_mm']} mm"
        else:
            extra = ""
        parts.append(f"truth {truth['propagator']}" + (f" ({extra})" if extra else ""))
    target = provenance.get("target_generator")
    if target:
        parts.append(f"target {target['name']} ({str(target.get('model_digest'))[:19]})")
    for data in provenance.get("training_data", []):
        parts.append(f"data {data.get('file')} ({str(data.get('digest'))[:19]})")
    parts.append(f"{provenance.get('sample_size'):,} training rows, seed {provenance.get('seed')}")
    if provenance.get("notes"):
        parts.append("inferred: " + "; ".join(provenance["notes"]))
    return "; ".join(parts)


# Model parameters a stage ignores under another parameter's value: nf-after-shield reads
# p1_weights only with p1_source nf-decay-vessel; an unused model must not be refused.
_UNUSED_UNLESS = {("nf-after-shield", "p1_weights"): ("p1_source", "nf-decay-vessel")}


def _models(spec, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(weights path, provenance) of the trained models a stage's parameters name and uses."""
    found = []
    for parameter in spec.parameters:
        condition = _UNUSED_UNLESS.get((spec.name, parameter.name))
        if condition and params.get(condition[0]) != condition[1]:
            continue
        value = params.get(parameter.name)
        if parameter.type == "path" and isinstance(value, str) and value.endswith(".safetensors"):
            record = read_provenance(value)
            if record and record.get("geometry"):
                found.append((value, record))
    return found


def _geometries(spec, params: Mapping[str, Any]) -> list[str]:
    """Geometry files a stage uses (its ``geometry`` path parameters)."""
    return [params[p.name] for p in spec.parameters
            if p.type == "path" and params.get(p.name) and (p.content == "geometry" or p.name == "geometry")]


def mismatches(stages: Sequence[Any], registry: Any, document: Mapping[str, Any] | None = None
               ) -> list[tuple[int, str]]:
    """(index of the model's stage, message) for every trained model of ``stages`` whose
    training geometry (content digest, which includes the field model) differs from a
    geometry a stage of the same config uses."""
    registered = [registry.get(stage.kind, stage.component) for stage in stages]
    # a stage of a component this registry does not know (a run's own registry) has nothing to compare
    pairs = [(stage, entry.spec) for stage, entry in zip(stages, registered, strict=True) if entry is not None]
    used: dict[str, dict[str, Any]] = {}
    users: dict[str, list[str]] = {}
    for stage, spec in pairs:
        for path in _geometries(spec, stage.params):
            if path not in used:
                used[path] = geometry_record(path)
            users.setdefault(path, []).append(f"stages[{stage.index}] {stage.component}")
    found = []
    for stage, spec in pairs:
        for weights, record in _models(spec, stage.params):
            learnt = record["geometry"]
            for path, current in used.items():
                if current["digest"] != learnt.get("digest"):
                    found.append((stage.index, (
                        f"{stage.component}: {Path(weights).name} was trained for geometry "
                        f"{_geometry_text(learnt)}, but {', '.join(users[path])} uses {_geometry_text(current)}")))
    return found


def _allowed(document: Mapping[str, Any] | None, index: int) -> bool:
    stages = (document or {}).get("stages") or []
    return index < len(stages) and bool(stages[index].get(OVERRIDE_KEY, False))


def check_stages(stages: Sequence[Any], registry: Any, document: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(config key, message) of the first mismatch not allowed by ``allow_geometry_mismatch``, else None."""
    for index, message in mismatches(stages, registry, document):
        if not _allowed(document, index):
            return (f"stages[{index}]", f"{message}; retrain the model for that geometry, or set "
                                        f"{OVERRIDE_KEY}: true on stages[{index}] to run it anyway")
    return None


def accepted_mismatches(config: Any) -> list[str]:
    """The mismatches a config runs with because its stage says ``allow_geometry_mismatch``
    (nothing to look up when no stage says so)."""
    from shipfastsim.registry import get_registry

    if not any(_allowed(config.document, stage.index) for stage in config.stages):
        return []
    return [f"stages[{index}] {message}" for index, message in mismatches(config.stages, get_registry(),
                                                                         config.document)
            if _allowed(config.document, index)]
