"""Sphinx configuration of the shipfastsim documentation (Markdown pages through MyST).

Built with warnings as errors by ``tests/test_docs.py``: a broken page, a dead internal
link or a docstring that does not render fails the test suite.  No network is used: the
generated pages (config keys, command-line help, components) come from the installed
package through the extension in ``_ext/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "shipfastsim"
author = "the shipfastsim developers"
copyright = "2026, the shipfastsim developers"  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "shipfastsim_docs",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "dollarmath"]
suppress_warnings: list[str] = []

html_theme = "furo"
html_title = "shipfastsim"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Every internal reference must resolve; types of other libraries have no inventory here
# (the build is offline), so only those are let through.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|np|numpy|pluggy|pathlib|collections|typing|types|awkward|ak|argparse|dataclasses)(\..*)?"),
    (r"py:.*", r"(Path|Any|Callable|Sequence|Mapping|Iterator|Iterable|Literal|Tensor|ndarray|TypeAlias)"),
    (r"py:.*", r"(optional|default .*|True|False|None)"),
    (r"py:.*", r"(StageKind|ParameterType)"),  # typing.Literal aliases of `shipfastsim.components`
]
