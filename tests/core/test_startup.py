"""Start-up cost: ``shipfastsim --help`` and every subcommand's ``--help`` must not
import torch or scipy.stats (about 1 s and 0.4 s before the parser exists).

Each help runs in a fresh interpreter under ``python -X importtime``, whose report
lists every module imported; the test reads the names from it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from shipfastsim.cli import build_parser

HEAVY = ("torch", "scipy.stats")


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the parser: (), ("run",), ("tables", "build"), ..."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _subcommands(sub, (*prefix, name))
    return paths


def imported_modules(*args: str) -> tuple[list[str], str]:
    """Names of the modules ``python -X importtime ARGS`` imports, and its standard output."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return [line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:") and "|" in line], result.stdout


def heavy_imports(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


COMMANDS = _subcommands(build_parser())


def test_every_subcommand_is_covered():
    names = {path[0] for path in COMMANDS if path}
    assert {"run", "check", "plugins", "geometry", "tables", "export", "train", "validate"} <= names


def test_importtime_report_is_read():
    # The report's module names are read (json is imported by nothing at start-up) ...
    modules, _ = imported_modules("-c", "import json")
    assert "json" in modules and "json.decoder" in modules
    # ... and a heavy package is recognised by its submodules too, not by a prefix of another name.
    assert heavy_imports(["scipy.stats._stats_py", "torch._C", "torchvision", "scipy.linalg", "json"]) == [
        "scipy.stats._stats_py", "torch._C"]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda path: " ".join(path) or "shipfastsim")
def test_help_imports_no_heavy_module(command):
    modules, stdout = imported_modules("-m", "shipfastsim", *command, "--help")
    assert "usage: shipfastsim" in stdout and "shipfastsim.cli" in modules
    assert heavy_imports(modules) == [], f"{' '.join(command)} --help imports {heavy_imports(modules)[:5]}"
