"""Sphinx configuration of the scenecls documentation site.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``pip install -e ".[docs]"`` first); open ``docs/_build/html/index.html``.
Pages are Markdown (MyST); the CLI reference is generated from the argparse parsers
(sphinx-argparse), the Python API from the docstrings (autodoc), the HTTP routes and
MQTT topics from the tables the service itself is built from (``_ext/scenecls_tables``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

from scenecls.version import __version__  # noqa: E402

project = "scenecls"
author = "the scenecls developers"
copyright = "2026, the scenecls developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxarg.ext",
    "scenecls_tables",
    "cli_examples",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "perf", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4
suppress_warnings: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"scenecls {__version__}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
