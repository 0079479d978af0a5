"""Fractions of muons reaching each recording plane (and aperture), by charge and
momentum bin, from a `TransportResult` or from the run's counters.

Counter keys written by the ``reference-shield`` propagator (and read back here):
``reference-shield/<charge>/<bin>/<what>`` with charge ``mu+``/``mu-``, bin such as
``p25-50`` (initial momentum in GeV) and what ``generated``, ``<plane>`` or
``<plane>:aperture``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from shipfastsim.plugins.reference.transport import TransportResult

__all__ = ["DEFAULT_P_BINS", "COUNTER_PREFIX", "bin_labels", "transport_counts", "transport_summary",
           "summary_from_counters", "format_summary"]

#: Initial-momentum bin edges [GeV].
DEFAULT_P_BINS: tuple[float, ...] = (0.0, 25.0, 50.0, 100.0, 150.0, 200.0, 400.0, float("inf"))
COUNTER_PREFIX = "reference-shield"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Names like ``p25-50`` (``p400-inf``) of the bins between edges."""
    def f(v: float) -> str:
        return "inf" if v == float("inf") else f"{v:g}"
    return [f"p{f(lo)}-{f(hi)}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def transport_counts(p0: torch.Tensor, charge: torch.Tensor, result: TransportResult,
                     edges: Sequence[float] = DEFAULT_P_BINS, prefix: str = COUNTER_PREFIX) -> Counter[str]:
    """Counts per (charge, momentum bin, plane / aperture) as counter keys under ``prefix``
    (the propagator's name)."""
    labels = bin_labels(edges)
    index = torch.bucketize(p0, torch.tensor(edges[1:-1], dtype=p0.dtype), right=True)
    counts: Counter[str] = Counter()
    flags = {"generated": torch.ones_like(p0, dtype=torch.bool), **result.reached}
    flags |= {f"{name}:aperture": mask for name, mask in result.in_aperture.items()}
    for sign, cname in ((1.0, "mu+"), (-1.0, "mu-")):
        for what, mask in flags.items():
            hist = torch.bincount(index[(charge == sign) & mask], minlength=len(labels))
            for label, value in zip(labels, hist.tolist(), strict=True):
                if value:
                    counts[f"{prefix}/{cname}/{label}/{what}"] += value
    return counts


def summary_from_counters(counters: Mapping[str, int],
                          prefix: str = COUNTER_PREFIX) -> dict[str, dict[str, dict[str, float]]]:
    """{charge: {bin or 'all': {what: fraction of generated, 'generated': n}}} from the
    counters a propagator wrote under ``prefix``."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    raw: dict[tuple[str, str], dict[str, int]] = {}
    for key, value in counters.items():
        parts = key.split("/")
        if len(parts) != 4 or parts[0] != prefix:
            continue
        _, charge, label, what = parts
        for lab in (label, "all"):
            raw.setdefault((charge, lab), Counter())[what] += value
    for (charge, label), counts in raw.items():
        n = counts.get("generated", 0)
        row: dict[str, float] = {"generated": n}
        for what, value in counts.items():
            if what != "generated":
                row[what] = value / n if n else float("nan")
        table.setdefault(charge, {})[label] = row
    return table


def transport_summary(p0: torch.Tensor, charge: torch.Tensor, result: TransportResult,
                      edges: Sequence[float] = DEFAULT_P_BINS) -> dict[str, dict[str, dict[str, float]]]:
    """Fractions reaching each plane / aperture by charge and initial-momentum bin."""
    return summary_from_counters(transport_counts(p0, charge, result, edges))


def format_summary(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A plain-text table of `summary_from_counters` output."""
    whats = sorted({w for rows in table.values() for row in rows.values() for w in row if w != "generated"})
    lines = [f"{'charge':6} {'p bin [GeV]':14} {'generated':>9} " + " ".join(f"{w:>22}" for w in whats)]
    for charge in sorted(table):
        rows = table[charge]
        order = sorted((k for k in rows if k != "all"), key=lambda k: float(k[1:].split("-")[0])) + ["all"]
        for label in order:
            if label not in rows:
                continue
            row = rows[label]
            lines.append(f"{charge:6} {label:14} {int(row['generated']):9d} "
                         + " ".join(f"{row.get(w, 0.0):22.4f}" for w in whats))
    return "\n".join(lines)
