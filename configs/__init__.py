"""Shipped YAML configs (production runs and shield geometries), installed as package data."""

from pathlib import Path

__all__ = ["CONFIG_DIR", "GEOMETRY_DIR", "DEFAULT_GEOMETRY"]

CONFIG_DIR = Path(__file__).resolve().parent
GEOMETRY_DIR = CONFIG_DIR / "geometry"
# The shield every transport uses when a config names none, and the one the bundled
# after-shield models and filter learnt (their JSON records it).
DEFAULT_GEOMETRY = GEOMETRY_DIR / "ship_try2025.yaml"
