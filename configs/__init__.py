"""Shipped YAML configs (production runs and shield geometries), installed as package data."""

from pathlib import Path

__all__ = ["CONFIG_DIR", "GEOMETRY_DIR", "DEFAULT_GEOMETRY", "MODEL_SETS", "DEFAULT_MODEL_SET"]

CONFIG_DIR = Path(__file__).resolve().parent
GEOMETRY_DIR = CONFIG_DIR / "geometry"
# The shield every transport uses when a config names none: FairShip's default since PRs
# #1334 and #1342 (run_simScript.py --shieldName TRY_2026).
DEFAULT_GEOMETRY = GEOMETRY_DIR / "ship_try2026.yaml"
#: The subdirectory of each geometry-bound plugin (nf-after-shield, nf-decay-vessel,
#: mlp-filter) that holds its bundled models for a shield, by the shield's name; each
#: model's JSON records the geometry it learnt (`shipfastsim.provenance`).
MODEL_SETS = {"TRY_2025": "try2025", "TRY_2026": "try2026"}
#: The models a stage uses when its config names no weights: those of DEFAULT_GEOMETRY.
DEFAULT_MODEL_SET = MODEL_SETS["TRY_2026"]
