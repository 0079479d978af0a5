"""Shipped YAML configs (production runs and shield geometries), installed as package data."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
GEOMETRY_DIR = CONFIG_DIR / "geometry"
