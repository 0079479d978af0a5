"""The modules of ``shipfastsim`` import one way: no import cycle, anywhere in the package.

The graph is built statically (``ast``) from every ``import`` statement that can run:
module-level ones and those inside functions.  A function-level import still ties the two
modules together (neither can be read or changed alone, and it is how the old cycles such
as ``config -> executors -> runner -> config`` hid), so it counts.  Imports under
``if TYPE_CHECKING:`` never run and serve annotations only, so they do not; nor do
modules named in strings (``importlib.import_module`` of the plugin and subcommand lists),
which are the registry's and the CLI's way of reaching up without importing.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def package_files(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Module name -> source file of every module of the distribution, from the
    ``package-dir`` mapping of pyproject.toml (plugins/ is ``shipfastsim.plugins``)."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in mapping.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if any(part.startswith(".") or part == "__pycache__" for part in parts):
                continue
            modules[".".join([package, *parts])] = path
    return modules


def _type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements outside ``if TYPE_CHECKING:`` blocks, at any depth."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_block(child):
                pending.extend(child.orelse)  # the else branch does run
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            pending.append(child)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports at run time.  ``from pkg import name``
    points at ``pkg.name`` when that is a module, else at ``pkg``."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a non-module attribute
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_no_import_cycle_in_the_package():
    modules = package_files()
    assert "shipfastsim.config" in modules and "shipfastsim.plugins.fast_shield" in modules
    cycles = import_cycles(import_graph(modules))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_config_imports_nothing_of_the_run_and_nothing_imports_the_cli():
    """The layers: config and file checks below planning and output, executors, runner and
    the CLI; only the command modules (and the CLI's own entry) reach the CLI."""
    graph = import_graph(package_files())
    run_machinery = {"shipfastsim.executors", "shipfastsim.runner", "shipfastsim.output", "shipfastsim.summary",
                     "shipfastsim.cli", "shipfastsim.commands"}
    assert not graph["shipfastsim.config"] & run_machinery
    below_cli = ["shipfastsim.config", "shipfastsim.file_checks", "shipfastsim.executors", "shipfastsim.runner",
                 "shipfastsim.output", "shipfastsim.summary", "shipfastsim.normalisation", "shipfastsim.registry"]
    assert not [module for module in below_cli if "shipfastsim.cli" in graph[module]]


@pytest.mark.parametrize("planted", ["module-level", "function-level"])
def test_a_planted_cycle_is_found(tmp_path, planted):
    """The detector itself: a three-module package with a cycle, at either level, and a
    TYPE_CHECKING import that must not count."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools]\npackage-dir = { "pkg" = "pkg" }\n')
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.top import T\n")
    (tmp_path / "pkg" / "mid.py").write_text("from pkg import low\n")
    back = "from . import mid\n" if planted == "module-level" else "def f():\n    from pkg.mid import x\n"
    (tmp_path / "pkg" / "top.py").write_text("import pkg.mid\n")
    modules = package_files(tmp_path)
    assert import_cycles(import_graph(modules)) == []  # TYPE_CHECKING only: no cycle
    (tmp_path / "pkg" / "low.py").write_text(back)
    assert import_cycles(import_graph(package_files(tmp_path))) == [["pkg.low", "pkg.mid"]]
