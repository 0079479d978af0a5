"""The rate that matters: a target generator's muons per generated muon after the shield.

A target generator is judged in the end by how many of its muons get through the
shield, not by its distributions at the target.  `transported_rates` carries
``n_sources`` muons of a generator (or, through ``fairship-file``, of its truth
sample) in ``copies`` azimuthal rotations each through the same fast-shield chain as
the filter's labelling (`shipfastsim.plugins.mlp_filter.labels.label_target_muons`)
and counts, per generated muon, those reaching the shield end and those entering the
decay-vessel aperture (P1) and staying in the vessel (P2).

Errors: the copies of one muon are correlated (a muon that passes in one azimuth
tends to pass in others), so a binomial error over all rows is too small.  The rate
is a ratio of per-source sums, r = sum_s K_s / sum_s C_s (K_s: hits among the C_s
copies of source muon s), and its standard error is the ratio estimator's,

    se(r)^2 = n / (n - 1) * sum_s (K_s - r C_s)^2 / (sum_s C_s)^2 ,

which treats the n source muons as the independent units.  `rate_ratio` compares a
generator's rate with its truth's (ratio, its error, and the pull in combined sigmas).
A weighted truth (a FairShip production's ``w``) weighs each source muon by its ``w``:
r = sum_s w_s K_s / sum_s w_s C_s, with the same ratio-estimator error.

`RateSelection` makes the rate a model-selection criterion of the target-generator
trainers: the truth's rate is measured once from the training files' train and
validation muons (never the holdout), and every candidate pays a penalty growing
with its pull beyond `RateSelection.free_pull`.
Units: rates are muons per generated muon (dimensionless).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["TransportedRate", "RateSelection", "per_source_rate", "transported_rates", "rate_ratio", "file_rates",
           "rates_table"]


@dataclass(frozen=True)
class TransportedRate:
    """One label's rate [per generated muon] with its per-source-muon standard error."""

    label: str
    rate: float
    error: float
    hits: int  # rows (copies) with the label
    sources_with_hits: int  # distinct source muons with at least one such copy
    sources: int
    rows: int

    def to_dict(self) -> dict:
        return asdict(self)


def per_source_rate(hits: np.ndarray, source: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """``(rate, standard error)`` of boolean ``hits`` per row, rows grouped by ``source`` (the
    index of the generated muon each copy comes from): the ratio estimator over sources.
    ``weight`` (per row, equal within a source: the source muon's ``w``; None: 1)."""
    hits = np.asarray(hits, dtype=np.float64)
    _, first, inverse = np.unique(np.asarray(source), return_index=True, return_inverse=True)
    k = np.bincount(inverse, weights=hits)
    c = np.bincount(inverse).astype(np.float64)
    w = np.ones(len(k)) if weight is None else np.asarray(weight, dtype=np.float64)[first]
    n = len(k)
    rate = (w * k).sum() / (w * c).sum()
    if n < 2:
        return float(rate), float("nan")
    variance = n / (n - 1) * np.sum((w * (k - rate * c)) ** 2) / (w * c).sum() ** 2
    return float(rate), float(math.sqrt(variance))


def transported_rates(generator: str, params: dict, n_sources: int, copies: int, seed: int = 1,
                      chunk: int = 5000, shield_params: dict | None = None,
                      progress: bool = False, keep: Callable[[np.ndarray], np.ndarray] | None = None
                      ) -> dict[str, TransportedRate]:
    """Label name (shield_end, P1, P2) -> `TransportedRate` of ``n_sources`` muons of ``generator``
    (its ``params``) x ``copies`` phi rotations through fast-shield (``shield_params``).
    ``fairship-file`` muons of a weighted file count with their ``w``; ``keep(source)``
    (boolean per source index) restricts the rates to some source muons (a split)."""
    from shipfastsim.plugins.mlp_filter.labels import label_target_muons

    sample = label_target_muons(n_sources, copies, seed, chunk, shield_params=shield_params, gan_params=params,
                                progress=progress, generator=generator)
    weight = None
    if generator == "fairship-file":  # the source index is the muon's number in the files
        from shipfastsim.plugins.fairship_file import file_weights

        w = file_weights(params["files"])
        weight = None if np.all(w == w[0]) else w[sample.group]
    rows = np.ones(len(sample.group), bool) if keep is None else keep(sample.group)
    group = sample.group[rows]
    sources = len(np.unique(group))
    rates = {}
    for label, hits in sample.labels.items():
        rate, error = per_source_rate(hits[rows], group, None if weight is None else weight[rows])
        rates[label] = TransportedRate(label, rate, error, int(hits[rows].sum()), len(np.unique(group[hits[rows]])),
                                       sources, int(rows.sum()))
    return rates


def rate_ratio(candidate: TransportedRate, truth: TransportedRate) -> dict[str, float]:
    """Candidate / truth rate with its error (relative errors in quadrature) and the pull,
    (candidate - truth) / sqrt(se_candidate^2 + se_truth^2)."""
    if truth.rate <= 0:
        return {"ratio": float("nan"), "ratio_error": float("nan"), "pull": float("nan")}
    ratio = candidate.rate / truth.rate
    relative = math.hypot(candidate.error / candidate.rate if candidate.rate > 0 else 0.0, truth.error / truth.rate)
    combined = math.hypot(candidate.error, truth.error)
    return {"ratio": ratio, "ratio_error": ratio * relative,
            "pull": (candidate.rate - truth.rate) / combined if combined > 0 else float("nan")}


def file_rates(files: Sequence[str | Path], copies: int, seed: int = 1, split: str = "all",
               max_muons: int | None = None, shield_params: dict | None = None) -> dict[str, TransportedRate]:
    """`transported_rates` of the muons of FairShip ntuples ``files`` (``fairship-file``, their
    ``w`` honoured): the first ``max_muons`` of them (all when None), of which only the
    ``split`` part counts (muon numbers over all files, as `shipfastsim.validation.split`),
    each muon a source of ``copies`` rotations.  A file whose rows are already phi-rotated
    copies (a run with ``phi-rotation``) makes each copy a source: its errors are then too small."""
    from shipfastsim.adapters.fairship import count_muons
    from shipfastsim.validation.split import split_mask

    total = sum(count_muons(path) for path in files)
    n = min(total, max_muons) if max_muons else total
    mask = split_mask(total, split) if split != "all" else None

    def in_split(source: np.ndarray) -> np.ndarray:
        return mask[source]

    return transported_rates("fairship-file", {"files": [str(path) for path in files]}, n, copies, seed,
                             max(1, 10_000 // copies), shield_params=shield_params,
                             keep=None if mask is None else in_split)


def rates_table(reference: dict[str, TransportedRate], candidate: dict[str, TransportedRate],
                names: tuple[str, str] = ("reference", "candidate")) -> str:
    """Markdown table: per label, both rates [per muon] with their errors, and the candidate's
    ratio to the reference with its error and pull (`rate_ratio`)."""
    lines = [f"| label | {names[0]} per muon | {names[1]} per muon | {names[1]} / {names[0]} | pull [sigma] |",
             "|---|---|---|---|---|"]
    for label, truth in reference.items():
        other = candidate[label]
        ratio = rate_ratio(other, truth)
        lines.append(f"| {label} | {truth.rate:.4e} +- {truth.error:.1e} ({truth.sources_with_hits} sources) "
                     f"| {other.rate:.4e} +- {other.error:.1e} ({other.sources_with_hits} sources) "
                     f"| {ratio['ratio']:.3f} +- {ratio['ratio_error']:.3f} | {ratio['pull']:+.2f} |")
    return "\n".join(lines)


@dataclass
class RateSelection:
    """The after-transport rate as a model-selection criterion of a target generator.

    ``truth``: the ``label`` rate of the training files' train and validation muons
    (`from_files`); `penalty` measures a candidate (``generated`` muons x ``copies``
    rotations of ``generator`` with the candidate's weights) and returns
    ``weight * max(|pull| - free_pull, 0)``, added to the validation score: pulls within
    ``free_pull`` cost nothing, so the distributions still choose among models that
    reproduce the rate, and a model that misses it by 2.5 sigma costs more than the
    score differences between good checkpoints (about 0.01-0.02).
    """

    generator: str
    truth: TransportedRate
    generated: int
    copies: int
    seed: int
    label: str = "P1"
    free_pull: float = 1.0
    weight: float = 0.05

    @classmethod
    def from_files(cls, generator: str, files: list[str], generated: int, copies: int, truth_copies: int,
                   seed: int, label: str = "P1") -> RateSelection:
        """Measure the truth: every train and validation muon of ``files`` x ``truth_copies``."""
        from shipfastsim.adapters.fairship import count_muons
        from shipfastsim.validation.split import SPLITS, split_codes

        muons = sum(count_muons(f) for f in files)
        split = split_codes(muons) < SPLITS["validation"][1]
        truth = transported_rates("fairship-file", {"files": [str(f) for f in files]}, muons, truth_copies, seed,
                                  keep=lambda source: split[source])[label]
        return cls(generator, truth, generated, copies, seed + 1, label)

    def measure(self, save: Callable[[Path], object]) -> TransportedRate:
        """The candidate's rate: ``save(path)`` writes its weights (and JSON) to ``path``."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{self.generator.replace('-', '_')}.safetensors"
            save(path)
            return transported_rates(self.generator, {"weights": str(path)}, self.generated, self.copies,
                                     self.seed)[self.label]

    def penalty(self, rate: TransportedRate) -> tuple[float, dict[str, float]]:
        """``(penalty, rate_ratio(rate, truth))``."""
        ratio = rate_ratio(rate, self.truth)
        pull = ratio["pull"]
        return (self.weight * max(abs(pull) - self.free_pull, 0.0) if math.isfinite(pull) else math.inf), ratio
