"""What a referenced file must be: checks run by ``shipfastsim check`` before anything runs.

A `Parameter` of type ``path`` or ``paths`` names the kind of file it expects in its
``content`` attribute; the config validator calls `check_file` on every file given,
so that a truncated ROOT input, a run config given as a geometry or weights without
their JSON sidecar are one-line `ConfigError`s at check time instead of a traceback
in the middle of a run.  Each check reads only what it must (ROOT: the directory and
the basket index, not the baskets), so it stays cheap on large production files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from shipfastsim.errors import one_line

__all__ = ["FILE_CHECKS", "check_file", "geometry_planes"]


def _one_line(error: BaseException) -> str:
    return one_line(error, hint=False)


def _fairship_ntuple(path: Path) -> str | None:
    """A ROOT file that opens, holds the ``pythia8-Geant4`` tree with every branch the
    reader needs, and whose baskets all lie inside the file (not truncated)."""
    import uproot

    from shipfastsim.adapters.fairship import BRANCH_OF_COLUMN, TREE_NAME

    try:
        file = uproot.open(path)
    except Exception as error:  # uproot raises ValueError, OSError, struct errors ...
        return f"{path} is not a readable ROOT file ({_one_line(error)})"
    with file:
        if TREE_NAME not in file:
            return f"{path} has no tree {TREE_NAME!r} (keys: {', '.join(sorted(set(file.keys(cycle=False))))})"
        tree = file[TREE_NAME]
        missing = [b for b in BRANCH_OF_COLUMN.values() if b not in tree]
        if missing:
            return f"{path}: tree {TREE_NAME!r} lacks the branches {', '.join(missing)}"
        size = os.path.getsize(path)
        for branch in tree.branches:
            n = branch.num_baskets
            ends = branch.member("fBasketSeek")[:n] + branch.member("fBasketBytes")[:n]
            if n and int(max(ends)) > size:
                return (f"{path} is truncated: branch {branch.name!r} has data up to byte {int(max(ends))}, "
                        f"the file has {size} bytes")
    return None


def _geometry(path: Path) -> str | None:
    """A shield geometry YAML that validates (not, say, a run config)."""
    try:
        geometry_planes(path)
    except Exception as error:
        return f"{path} is not a shield geometry ({_one_line(error)})"
    return None


def _safetensors(path: Path) -> str | None:
    """Weights that open as safetensors, with the JSON sidecar (architecture) beside them."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as handle:
            handle.keys()
    except Exception as error:
        return f"{path} is not a safetensors weights file ({_one_line(error)})"
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return f"{path}: its JSON sidecar {sidecar.name} (architecture, training config) is missing"
    try:
        json.loads(sidecar.read_text())
    except ValueError as error:
        return f"{sidecar} is not valid JSON ({_one_line(error)})"
    return None


#: Content name (``Parameter.content``) -> check returning a problem or None.
FILE_CHECKS: dict[str, Callable[[Path], str | None]] = {
    "fairship-ntuple": _fairship_ntuple,
    "geometry": _geometry,
    "safetensors": _safetensors,
}


def check_file(content: str, path: str | Path) -> str | None:
    """The problem with ``path`` as a file of kind ``content`` (a key of `FILE_CHECKS`), or None."""
    return FILE_CHECKS[content](Path(path))


def geometry_planes(path: str | Path) -> list[str]:
    """Names of the recording planes of a geometry file (raises if it is not a geometry)."""
    from shipfastsim.geometry import load_geometry

    return list(load_geometry(path).plane_names())
