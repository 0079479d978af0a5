"""Crash-safe, resumable output: staged chunks, a manifest, and FairShip files.

Each finished chunk is first *staged*: its muons (already as float32 ntuple
branches) and its statistics go to ``.<stem>.chunks/chunk-NNNNNN.bin`` under a
temporary name that is renamed into place, so a staged chunk is either complete or
absent.  The driver then assembles the staged chunks, in chunk order, into the
output files (one file, or files of exactly ``muons_per_file`` muons), each written
atomically; ``<stem>.manifest.json``, also replaced atomically, records the files
written and the cursor (chunk, row) of the first muon not yet in a file.  After a
crash or SIGKILL, a resumed run keeps every staged chunk and every file listed in the
manifest, drops anything half-written, and recomputes only the missing chunks: the
output is identical to an uninterrupted run because chunk k depends only on (seed, k).

Row order: FairShip jobs simulate consecutive entries (``-i FIRST -n N``), so the rows
of each chunk are put in a seeded random order (`chunk_row_order`, seeded from
(seed, k) only) before staging: copies of one muon made by an augmenter are spread
over the chunk, any contiguous range of entries is an unbiased sample, and the order
does not depend on the number of workers.  Every file carries the run's metadata
(`shipfastsim.adapters.fairship.METADATA_KEY`) plus its own name and entry count.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from shipfastsim.adapters.fairship import BRANCH_OF_COLUMN, NtupleWriter
from shipfastsim.config import OutputConfig
from shipfastsim.units import FairShipFrame

__all__ = ["OutputStore", "OutputExistsError", "stage_chunk", "read_staged", "staging_dir_for", "merge_stats",
           "chunk_row_order", "ROW_ORDER_STREAM"]

_BRANCHES = tuple(BRANCH_OF_COLUMN.values())


class OutputExistsError(RuntimeError):
    """The output already holds (part of) a run that this invocation would overwrite."""


def staging_dir_for(output: OutputConfig) -> Path:
    return output.path.parent / f".{output.path.stem}.chunks"


#: Third seed word of the row-order stream, apart from the stage streams (seed, k, stage).
ROW_ORDER_STREAM = 0x524F5753


def chunk_row_order(n_rows: int, seed: int, chunk: int) -> np.ndarray:
    """The seeded permutation in which the ``n_rows`` output rows of chunk ``chunk`` are written."""
    return np.random.default_rng([seed, chunk, ROW_ORDER_STREAM]).permutation(n_rows)


def _atomic_write_bytes(path: Path, write, durable: bool = True) -> None:
    """Write through a temporary file renamed into place; ``durable`` also fsyncs,
    which guards against power loss and not only against a killed process.  Each
    writer has its own temporary name: a chunk rerun while a presumed-dead worker
    still writes it must not write into the same file."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def stage_chunk(staging_dir: Path, chunk: int, branches: dict[str, np.ndarray], stats: dict[str, Any]) -> None:
    """Atomically store one finished chunk (run in whichever process made it).

    Layout: 8-byte length, the statistics as JSON, then each branch in order as raw
    big-endian float32, the byte order ROOT files use, so that neither staging nor
    assembling copies or converts the arrays.
    """
    staging_dir.mkdir(parents=True, exist_ok=True)
    header = json.dumps(stats).encode()

    def write(handle) -> None:
        handle.write(len(header).to_bytes(8, "little"))
        handle.write(header)
        for name in _BRANCHES:
            handle.write(memoryview(np.ascontiguousarray(branches[name], dtype=">f4")).cast("B"))

    # A staged chunk can always be recomputed from (seed, chunk): rename atomicity is
    # enough, and skipping fsync keeps staging cheap.
    _atomic_write_bytes(staging_dir / f"chunk-{chunk:06d}.bin", write, durable=False)


def read_staged(path: Path, with_table: bool = True) -> tuple[dict[str, Any], np.ndarray | None]:
    """Statistics and (optionally) the (branches, muons) table of a staged chunk."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        stats = json.loads(handle.read(size))
        if not with_table:
            return stats, None
        table = np.fromfile(handle, dtype=">f4", count=len(_BRANCHES) * stats["muons_out"])
    return stats, table.reshape(len(_BRANCHES), stats["muons_out"])


def merge_stats(total: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """Add one chunk's statistics into a running total (both plain JSON dicts)."""
    if not total:
        return json.loads(json.dumps(chunk))
    for mine, theirs in zip(total["stages"], chunk["stages"], strict=True):
        for key in ("muons_in", "muons_out", "weight_in", "weight_out", "seconds"):
            mine[key] += theirs[key]
    for key, value in chunk["counters"].items():
        total["counters"][key] = total["counters"].get(key, 0) + value
    for key in ("muons_out", "chunks", "stage_seconds", "staging_seconds"):
        total[key] += chunk[key]
    return total


class OutputStore:
    """The output of one run: staging area, manifest and FairShip files."""

    def __init__(self, output: OutputConfig, fingerprint: str, n_chunks: int,
                 metadata: dict[str, Any] | None = None):
        self.output = output
        self.metadata = metadata
        self.fingerprint = fingerprint
        self.n_chunks = n_chunks
        self.directory = output.path.parent
        self.staging = staging_dir_for(output)
        self.manifest_path = self.directory / f"{output.path.stem}.manifest.json"
        self.frame = FairShipFrame(output.target_z0, output.ntuple_z_offset)
        self.manifest: dict[str, Any] = {}
        self.staged_rows: dict[int, int] = {}

    # ---- start / resume ---------------------------------------------------------------
    def open(self, resume: bool, overwrite: bool = False) -> set[int]:
        """Prepare the directory; return the chunks already done (staged or written).

        ``overwrite`` first removes a previous run's files, manifest and staging area.
        """
        if overwrite:
            self._remove_previous_run()
        exists = self.manifest_path.exists() or self.staging.exists()
        if exists and not resume:
            raise OutputExistsError(
                f"{self.output.path} already holds a run ({self.manifest_path.name}); "
                "pass --resume to continue it or --overwrite to replace it")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(exist_ok=True)
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text())
            if self.manifest["fingerprint"] != self.fingerprint:
                raise OutputExistsError(
                    f"{self.output.path} was made by a different config or seed (fingerprint "
                    f"{self.manifest['fingerprint']} != {self.fingerprint}); it cannot be resumed: run with "
                    "--overwrite to replace it, or give another output path")
        else:
            self.manifest = {"fingerprint": self.fingerprint, "n_chunks": self.n_chunks, "files": [],
                             "cursor": [0, 0], "stats": {}, "complete": False}
            self._save_manifest()
        self._clean_leftovers()
        cursor_chunk = self.manifest["cursor"][0]
        for path in self.staging.glob("chunk-*.bin"):
            chunk = int(path.stem.split("-")[1])
            if chunk < cursor_chunk:
                path.unlink()  # already in a file; the deletion was interrupted
            else:
                self.staged_rows[chunk] = read_staged(path, with_table=False)[0]["muons_out"]
        return set(range(cursor_chunk)) | set(self.staged_rows)

    def _remove_previous_run(self) -> None:
        if self.manifest_path.exists():
            for entry in json.loads(self.manifest_path.read_text())["files"]:
                (self.directory / entry["name"]).unlink(missing_ok=True)
            self.manifest_path.unlink()
        if self.staging.exists():
            for path in self.staging.iterdir():
                path.unlink()
            self.staging.rmdir()

    def _clean_leftovers(self) -> None:
        listed = {entry["name"] for entry in self.manifest["files"]}
        for path in list(self.staging.glob("*.tmp")) + list(self.directory.glob(".*.tmp")):
            path.unlink()
        for path in self._candidate_outputs():
            if path.name not in listed:
                path.unlink()  # written but not recorded: rewritten from staged chunks

    def _candidate_outputs(self) -> Iterable[Path]:
        stem, suffix = self.output.path.stem, self.output.path.suffix
        yield from (p for p in [self.output.path] if p.exists())
        yield from self.directory.glob(f"{stem}_[0-9][0-9][0-9][0-9][0-9]{suffix}")

    def _save_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=1).encode()
        _atomic_write_bytes(self.manifest_path, lambda handle: handle.write(text))

    # ---- assembling files -------------------------------------------------------------
    def chunk_staged(self, chunk: int, muons_out: int) -> None:
        """Note a newly staged chunk and write every output file that is now complete."""
        self.staged_rows[chunk] = muons_out
        self._assemble(final=False)

    def finish(self) -> list[Path]:
        """Write the remaining muons, mark the run complete, remove the staging area."""
        self._assemble(final=True)
        if not self.manifest["files"]:
            self._write_file([], 0)  # an empty but valid ntuple: the run kept no muon
        # Chunks that kept no muon were never consumed by a file: count them now.
        self.manifest["stats"] = self.pending_stats()
        self.manifest["complete"] = True
        self._save_manifest()
        for path in self.staging.glob("*"):
            path.unlink()
        self.staging.rmdir()
        return self.files

    @property
    def files(self) -> list[Path]:
        return [self.directory / entry["name"] for entry in self.manifest["files"]]

    def _file_name(self) -> str:
        if self.output.muons_per_file is None:
            return self.output.path.name
        index = len(self.manifest["files"])
        return f"{self.output.path.stem}_{index:05d}{self.output.path.suffix}"

    def _contiguous(self) -> list[int]:
        chunks, chunk = [], self.manifest["cursor"][0]
        while chunk in self.staged_rows:
            chunks.append(chunk)
            chunk += 1
        return chunks

    def _assemble(self, final: bool) -> None:
        while True:
            chunks = self._contiguous()
            available = sum(self.staged_rows[c] for c in chunks) - self.manifest["cursor"][1]
            all_staged = self.manifest["cursor"][0] + len(chunks) == self.n_chunks
            per_file = self.output.muons_per_file
            if per_file is not None and available >= per_file and available > 0:
                take = per_file
            elif final and all_staged and (available > 0 or not self.manifest["files"]):
                take = available
            else:
                return
            self._write_file(chunks, take)
            if take == available:
                return

    def _write_file(self, chunks: list[int], take: int) -> None:
        name = self._file_name()
        cursor_chunk, row = self.manifest["cursor"]
        consumed: list[int] = []
        metadata = None if self.metadata is None else self.metadata | {"file": name, "entries": take}
        with NtupleWriter(self.directory / name, self.frame, self.output.compression,
                          self.output.compression_level, metadata) as writer:
            remaining = take
            for chunk in chunks:
                if remaining == 0:
                    break
                stats, table = read_staged(self.staging / f"chunk-{chunk:06d}.bin")
                stop = min(self.staged_rows[chunk], row + remaining)
                writer.write_branches({b: table[i, row:stop] for i, b in enumerate(_BRANCHES)})
                remaining -= stop - row
                if stop == self.staged_rows[chunk]:
                    consumed.append(chunk)
                    self.manifest["stats"] = merge_stats(self.manifest["stats"], stats)
                    cursor_chunk, row = chunk + 1, 0
                else:
                    cursor_chunk, row = chunk, stop
        self.manifest["files"].append({"name": name, "entries": take})
        self.manifest["cursor"] = [cursor_chunk, row]
        self._save_manifest()
        for done in consumed:
            (self.staging / f"chunk-{done:06d}.bin").unlink()
            del self.staged_rows[done]

    def pending_stats(self) -> dict[str, Any]:
        """Statistics of all chunks: in files, plus staged but not yet consumed."""
        total = json.loads(json.dumps(self.manifest["stats"]))
        for chunk in sorted(self.staged_rows):
            path = self.staging / f"chunk-{chunk:06d}.bin"
            if path.exists():
                total = merge_stats(total, read_staged(path, with_table=False)[0])
        return total
