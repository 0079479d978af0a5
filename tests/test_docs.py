"""The documentation site builds with warnings as errors, and the README stays a front door.

``sphinx-build -W --keep-going -n`` (nitpicky): a page that does not parse, a dead internal
link or anchor, a reference to a Python object that does not exist, or a docstring that
does not render fails the build.  The config keys, the command-line help and the
components' parameters are generated from the package (``docs/_ext``), so they cannot drift.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")
pytest.importorskip("myst_parser", reason="the docs extra: pip install -e '.[docs]'")


def sphinx_build(source: Path, output: Path) -> subprocess.CompletedProcess:
    """A fresh html build of ``source`` with warnings as errors (in its own process: autodoc
    imports the package, and Sphinx keeps global state)."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-q", "-b", "html",
                           str(source), str(output)], capture_output=True, text=True, timeout=300)


def test_the_docs_build_with_warnings_as_errors(tmp_path):
    result = sphinx_build(DOCS, tmp_path / "html")
    assert result.returncode == 0, result.stderr[-5000:]
    html = (tmp_path / "html" / "production.html").read_text()
    # the generated pages are there: a schema key with its unit, a command's help, a component
    assert "ntuple_z_offset" in html and "usage: shipfastsim run" in html
    plugin_page = (tmp_path / "html" / "plugin-author.html").read_text()
    assert "latent_sigma" in plugin_page
    from shipfastsim import hookspecs

    hooks = [name for name in vars(hookspecs) if name.startswith("shipfastsim_")]
    assert len(hooks) >= 7
    assert [name for name in hooks if f'id="shipfastsim.hookspecs.{name}"' not in plugin_page] == []


@pytest.mark.parametrize("planted", ["dead page link", "dead anchor", "unknown python object"])
def test_a_broken_link_fails_the_build(tmp_path, planted):
    """The build settings themselves: the same conf.py and extension on a one-page site with
    one planted fault, which must fail the build (and a clean page must not)."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(DOCS / "conf.py", site / "conf.py")
    shutil.copytree(DOCS / "_ext", site / "_ext")
    (site / "other.md").write_text("# Other\n\n## A section\n\ntext\n")
    page = "# Home\n\n```{toctree}\nother\n```\n\nSee [the section](other.md#a-section).\n"
    (site / "index.md").write_text(page)
    assert sphinx_build(site, tmp_path / "clean").returncode == 0
    fault = {"dead page link": "[gone](missing.md)", "dead anchor": "[gone](other.md#no-such-section)",
             "unknown python object": "{py:func}`shipfastsim.config.no_such_function`"}[planted]
    (site / "index.md").write_text(page + f"\nAnd {fault}.\n")
    result = sphinx_build(site, tmp_path / "broken")
    assert result.returncode != 0 and "WARNING" in result.stderr


def test_every_config_key_is_described():
    """The generated key table is only as good as the schema: every key says what it is."""
    schema = json.loads((REPO_ROOT / "shipfastsim" / "schemas" / "config-v1.json").read_text())
    missing = []

    def walk(node: dict, prefix: str) -> None:
        for name, sub in node.get("properties", {}).items():
            key = f"{prefix}.{name}" if prefix else name
            if not sub.get("description"):
                missing.append(key)
            walk(sub, key)
            if isinstance(sub.get("items"), dict):
                walk(sub["items"], f"{key}[]")

    walk(schema, "")
    assert not missing


def test_the_readme_is_short_and_its_links_resolve():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/") for t in local)
    assert [t for t in local if not (REPO_ROOT / t).exists()] == []


def test_every_command_option_says_what_it_is():
    """The generated command-line reference is the parsers' own help: every argument of
    every command has a help text."""
    import argparse

    from shipfastsim.cli import build_parser

    silent = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*words, name])
            elif not action.help:
                silent.append(" ".join([*words, *(action.option_strings or [action.dest])]))

    walk(build_parser(), [])
    assert silent == []
