"""Lazy public names for packages (PEP 562), so that light entry points stay light.

``shipfastsim --help`` builds every subcommand's parser, which imports the packages
the subcommands live in; a package whose ``__init__`` re-exports torch- or
scipy-backed names would make the help wait about a second for them.  A package
lists where each public name lives and imports it on first access instead::

    __getattr__ = lazy_getattr(__name__, {"MuonBatch": "shipfastsim.batch"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, sources: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``sources[name]`` (a module path) on first
    access to ``name`` and caching the value in the package."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(sources[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
