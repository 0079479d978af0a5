"""Deterministic train / validation / holdout split of a muon sample, shared by all surrogates.

Muon number i (0-based, in file order over all input files, non-muon padding rows
skipped) goes to ``u = splitmix64(i) / 2^64``: train if u < 0.8, validation if
u < 0.9, holdout otherwise (80/10/10 %).  The split depends on nothing but i, so the
same files always give the same parts, whatever the training seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPLITS", "split_codes", "split_mask"]

#: Split name -> [low, high) interval of the hash value.
SPLITS: dict[str, tuple[float, float]] = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "holdout": (0.9, 1.0)}


def _splitmix64(i: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = i.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def split_codes(n: int) -> np.ndarray:
    """Hash value in [0, 1) of muon numbers 0..n-1."""
    return (_splitmix64(np.arange(n)) >> np.uint64(11)).astype(np.float64) / 2.0**53


def split_mask(n: int, part: str) -> np.ndarray:
    """Boolean mask of the muons 0..n-1 that belong to ``part`` (train, validation, holdout)."""
    if part not in SPLITS:
        raise ValueError(f"unknown split {part!r}; known: {list(SPLITS)}")
    low, high = SPLITS[part]
    code = split_codes(n)
    return (code >= low) & (code < high)
