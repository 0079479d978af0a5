"""Shield geometry shared by every propagator: YAML model, materials, lookups.

``load_geometry(path)`` gives a validated `ShieldGeometry`; ``GeometryLookup``
answers ``material_at``/``field_at``/``region_at`` for tensors of positions [cm].
"""

from shipfastsim.geometry.lookup import GeometryLookup
from shipfastsim.geometry.materials import MATERIALS, Material, get_material
from shipfastsim.geometry.model import (
    MAGNET_PARAMETERS,
    GeometryError,
    Magnet,
    RecordingPlane,
    ShieldGeometry,
    geometry_from_dict,
    load_geometry,
)

__all__ = [
    "GeometryLookup",
    "MATERIALS",
    "Material",
    "get_material",
    "MAGNET_PARAMETERS",
    "GeometryError",
    "Magnet",
    "RecordingPlane",
    "ShieldGeometry",
    "geometry_from_dict",
    "load_geometry",
]
