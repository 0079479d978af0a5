"""Sphinx directives that write reference tables from the installed package itself.

* ``config-keys``: every key of ``shipfastsim/schemas/config-v1.json`` with its type,
  default, allowed values, unit (``x-unit``) and description;
* ``cli-help``: the ``--help`` of every ``shipfastsim`` command, as argparse prints it;
* ``component-parameters``: every registered component with its parameters, defaults and
  help texts (what ``shipfastsim plugins`` prints).

Generated, so the docs cannot drift from the schema, the parser or the declarations.
"""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

__all__ = ["setup", "schema_rows", "command_helps"]


def _type(node: dict[str, Any]) -> str:
    if "const" in node:
        return f"const {node['const']}"
    if "enum" in node:
        return " \\| ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type", "")
    return " or ".join(kind) if isinstance(kind, list) else kind


def _limits(node: dict[str, Any]) -> str:
    parts = []
    for word, key in (("min", "minimum"), ("above", "exclusiveMinimum"), ("max", "maximum")):
        if key in node:
            parts.append(f"{word} {node[key]}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    return ", ".join(parts)


def _json_value(value: Any) -> str:
    """A default as YAML would take it: 4e+13 rather than 40000000000000.0."""
    return format(value, ".6g") if isinstance(value, float) else json.dumps(value)


def schema_rows(schema: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(key, type and limits, default, unit, description) of every key, depth first."""
    rows: list[tuple[str, str, str, str, str]] = []

    def walk(node: dict[str, Any], prefix: str, required: set[str]) -> None:
        for name, sub in node.get("properties", {}).items():
            key = f"{prefix}.{name}" if prefix else name
            kind = ", ".join(filter(None, (_type(sub), _limits(sub))))
            default = ("**required**" if name in required else
                       f"`{_json_value(sub['default'])}`" if "default" in sub else "")
            rows.append((f"`{key}`", kind, default, sub.get("x-unit", ""), sub.get("description", "")))
            walk(sub, key, set(sub.get("required", [])))
            items = sub.get("items")
            if isinstance(items, dict) and "properties" in items:
                walk(items, f"{key}[]", set(items.get("required", [])))

    walk(schema, "", set(schema.get("required", [])))
    return rows


def command_helps() -> list[tuple[str, str]]:
    """(command, its --help text) for ``shipfastsim`` and every subcommand, in parser order."""
    from shipfastsim.cli import build_parser

    found: list[tuple[str, str]] = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        found.append((" ".join(["shipfastsim", *words]), parser.format_help()))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*words, name])

    with redirect_stdout(io.StringIO()):
        walk(build_parser(), [])
    return found


def _source_root() -> str:
    from pathlib import Path

    import shipfastsim

    return str(Path(shipfastsim.__file__).resolve().parents[1]) + "/"


def _shown(value: Any) -> str:
    """A default as the reader would write it: bundled files relative to the source tree,
    not to this machine's checkout."""
    root = _source_root()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, str) and value.startswith(root):
        return value[len(root):]
    return repr(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class _MarkdownDirective(SphinxDirective):
    """Renders Markdown (MyST) produced by `markdown`."""

    def markdown(self) -> str:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.markdown().splitlines(), source="generated"), self.content_offset,
                                container)
        return container.children


class ConfigKeys(_MarkdownDirective):
    def markdown(self) -> str:
        from shipfastsim.config import _SCHEMA_PATH, schema

        self.env.note_dependency(str(_SCHEMA_PATH))
        lines = ["| key | type | default | unit | what it is |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in schema_rows(schema())]
        return "\n".join(lines)


class CliHelp(_MarkdownDirective):
    def markdown(self) -> str:
        out = []
        root = _source_root()
        for command, text in command_helps():
            text = text.replace(root, "")  # bundled files relative to the source tree
            out += [f"### `{command}`", "", "```text", text.rstrip(), "```", ""]
        return "\n".join(out)


class ComponentParameters(_MarkdownDirective):
    def markdown(self) -> str:
        from shipfastsim.registry import get_registry

        registry = get_registry()
        out = []
        for kind in ("generator", "propagator", "augmenter", "filter"):
            for name in registry.names(kind):
                spec = registry.get(kind, name).spec
                out += [f"### `{name}` ({kind})", "", _cell(spec.description), ""]
                if not spec.parameters:
                    out += ["No parameters.", ""]
                    continue
                out += ["| parameter | type | default | what it is |", "|---|---|---|---|"]
                for parameter in spec.parameters:
                    default = "**required**" if parameter.required else f"`{_shown(parameter.default)}`"
                    kind_text = parameter.type + (f" ({', '.join(map(str, parameter.choices))})"
                                                  if parameter.choices else "")
                    out.append(f"| `{parameter.name}` | {_cell(kind_text)} | {_cell(default)} | "
                               f"{_cell(parameter.doc)} |")
                out.append("")
        return "\n".join(out)


def _restore_attribute_text(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Napoleon reads ``#: Bending constant: curvature ...`` as type "Bending constant";
    the project writes attribute comments as prose, so put the words back in front."""
    if what not in ("attribute", "data"):
        return
    for index, line in enumerate(lines):
        if line.startswith(":type: "):
            words = line[len(":type: "):]
            del lines[index]
            first = next((i for i, text in enumerate(lines) if text.strip()), None)
            if first is not None:
                lines[first] = f"{words}: {lines[first].lstrip()}"
            while lines and not lines[-1].strip():
                lines.pop()
            return


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.napoleon")
    app.connect("autodoc-process-docstring", _restore_attribute_text, priority=600)  # after napoleon's 500
    app.add_directive("config-keys", ConfigKeys)
    app.add_directive("cli-help", CliHelp)
    app.add_directive("component-parameters", ComponentParameters)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
