"""Validation of surrogates against reference samples: metrics (`metrics`), report (`report`), CLI (`cli`)."""

from typing import TYPE_CHECKING

from shipfastsim.lazy import lazy_getattr

if TYPE_CHECKING:
    from shipfastsim.validation.metrics import (
        MUON_FEATURES,
        PHYSICS_FEATURES,
        FeatureMetric,
        ValidationMetrics,
        compare,
        feature_arrays,
        gbt_auc,
    )

__all__ = ["MUON_FEATURES", "PHYSICS_FEATURES", "FeatureMetric", "ValidationMetrics", "compare", "feature_arrays",
           "gbt_auc"]

# Imported on first use: the ``validate`` parser must not import scipy.stats and torch.
__getattr__ = lazy_getattr(__name__, {name: "shipfastsim.validation.metrics" for name in __all__})
