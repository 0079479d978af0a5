"""Shield geometry shared by every propagator: YAML model, materials, lookups.

``load_geometry(path)`` gives a validated `ShieldGeometry`; ``GeometryLookup``
answers ``material_at``/``field_at``/``region_at`` for tensors of positions [cm];
`shipfastsim.geometry.magnet` holds the one magnet cross-section and the field models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipfastsim.lazy import lazy_getattr

if TYPE_CHECKING:
    from shipfastsim.geometry.lookup import GeometryLookup
    from shipfastsim.geometry.magnet import FIELD_MODELS, POLARITY_RULES, FieldModel
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
    "FIELD_MODELS",
    "POLARITY_RULES",
    "FieldModel",
]

# Imported on first use: the ``geometry`` command's parser, built for
# ``shipfastsim --help``, must not import torch or scipy.
__getattr__ = lazy_getattr(__name__, {"GeometryLookup": "shipfastsim.geometry.lookup"}
                           | {name: "shipfastsim.geometry.materials" for name in __all__[1:4]}
                           | {name: "shipfastsim.geometry.model" for name in __all__[4:-3]}
                           | {name: "shipfastsim.geometry.magnet" for name in __all__[-3:]})
