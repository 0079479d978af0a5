"""``shipfastsim train chain``: one command that retrains the chain of a shield for a truth.

`sample` makes the transported training sample on dask workers, `steps` runs the steps
(sample, the three trainings, the report) with a marker each so that a rerun resumes,
`report` validates each model against held-out truth with the gates, `cli` is the
command line (light: ``shipfastsim --help`` imports it, not torch).  Recipe and
figures: docs/try2026.md (retraining the chain).
"""

__all__ = ["TRUTHS", "GENERATORS"]

#: Truth propagators the chain can learn from.
TRUTHS = ("fast-shield", "reference-shield", "geant4-shield")
#: Target generators (bundled weights) the sample can start from.
GENERATORS = ("flow-target", "gan-target")
