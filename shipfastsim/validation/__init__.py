"""Validation of surrogates against reference samples: metrics (`metrics`), report (`report`), CLI (`cli`)."""

from shipfastsim.validation.metrics import MUON_FEATURES, FeatureMetric, ValidationMetrics, compare, feature_arrays

__all__ = ["MUON_FEATURES", "FeatureMetric", "ValidationMetrics", "compare", "feature_arrays"]
