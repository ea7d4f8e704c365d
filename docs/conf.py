"""Sphinx configuration of the dammem documentation (build: see the README's "Documentation" section)."""

from __future__ import annotations

import os
import re
import sys
import zlib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # _apigen, _repro

import _apigen  # noqa: E402

import dammem  # noqa: E402

project = "dammem"
author = "dammem developers"
copyright = "dammem developers, Apache-2.0"
release = version = dammem.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
]
exclude_patterns = ["_build", "_screenshots", "_inventories", "**/.ipynb_checkpoints", "jupyter_execute"]
templates_path = ["_templates"]
nitpicky = True  # every cross-reference must resolve (API pages included); the build runs with -W

# --- API reference: generated from the package at every build --------------------------------------------------
_apigen.write_api_pages(DOCS / "api")
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True  # defaults as written in the source, not reprs of function objects
autodoc_type_aliases = {"Array": "jax.Array", "ArrayLike": "jax.typing.ArrayLike", "PRNGKey": "jax.Array"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_param = False  # one entry for arguments described together
napoleon_use_ivar = True  # "Attributes:" sections as fields, not a second description of each attribute
# Names the reference shows as written but cannot link: private helpers of dammem, and the aliases that annotations
# use (jaxtyping's shape-annotated arrays ``Float[Array, "K D"]``, dammem._types' ``Array`` / ``ArrayLike`` /
# ``PRNGKey``, module-level ``Literal`` aliases and type variables).
nitpick_ignore_regex = [("py:.*", r"dammem(\.\w+)*\._\w+.*"), ("py:class", r"'.*'")]  # jaxtyping's shape strings
_ANNOTATION_ALIASES = (
    "Float Int Bool Shaped Num Real Key Array ArrayLike PRNGKey TypeAliasForwardRef Mesh EraseMode CodebookKind "
    "AddressKind Separation ScoreFn PrecisionLike SimilarityName SimilarityLike dammem.nn.checkpoint.T"
)
nitpick_ignore = [("py:class", name) for name in _ANNOTATION_ALIASES.split()]
# dammem's modules that the reference has no page for (their public names are documented through their package),
# which docstrings may still name with :mod:.
# (also by their last component, as a package's docstring names its own modules).
nitpick_ignore += [("py:mod", n) for name in _apigen.undocumented_modules() for n in (name, name.rsplit(".", 1)[1])]
# Module-level names that docstrings of such modules mention but their package does not export.
nitpick_ignore += [("py:data", "ENERGIES"), ("py:func", "pad_to_power_of_two")]
# An unqualified annotation that names an object documented under two public names (``dammem.Retrieval`` and
# ``dammem.dynamics.Retrieval``) resolves to either: the same object.
suppress_warnings = ["ref.python"]


def _drop_type_docstrings(app, what, name, obj, options, lines):
    """A constant (a dict, a tuple) has no docstring of its own: do not show its type's (``dict``'s)."""
    doc = getattr(type(obj), "__doc__", None)
    if what in ("data", "attribute") and lines and isinstance(doc, str) and "\n".join(lines).strip() == doc.strip():
        lines.clear()


def _keep_literals_whole(app, what, name, obj, options, lines):
    """autosummary ends a summary at the first ". ", also inside a literal (``W_i . x``): put a zero-width space
    between such a period and its space in the first paragraph, so the summary keeps the literal whole."""
    for i, line in enumerate(lines):
        if not line.strip():
            break
        parts = line.split("``")
        lines[i] = "``".join(p.replace(". ", ".\u200b ") if k % 2 else p for k, p in enumerate(parts))


def _join_wrapped_fields(app, what, name, obj, options, lines):
    """Before napoleon reads the sections: join a line with an unclosed inline literal, or a list of argument names
    wrapped over several lines (``a, b,`` / ``c: what they are``), with the lines that continue it, so that napoleon
    splits ``name: description`` at the right colon. The text is unchanged (reST joins such lines anyway)."""
    names = re.compile(r"^\s*\w+(, \w+)*,$")
    for k, line in enumerate(lines):  # "TypeError / ValueError: ..." in Raises: two exception types
        lines[k] = re.sub(r"^(\s*\w+Error) / (\w+Error):", r"\1 or \2:", line)
    i = 0
    while i < len(lines) - 1:
        if (lines[i].count("``") % 2 or names.match(lines[i])) and lines[i + 1].strip():
            lines[i : i + 2] = [lines[i].rstrip() + " " + lines[i + 1].strip()]
        else:
            i += 1


def _sentence_not_type(app, what, name, obj, options, lines):
    """After napoleon: an attribute docstring that opens with a phrase and a colon ("The inverse temperature: ...")
    was read as ``:type: The inverse temperature``; put the phrase back in front of its sentence."""
    if what not in ("attribute", "property", "data"):
        return
    for k, line in enumerate(lines):
        match = re.match(r"^:type: ([A-Z][a-z]+ [a-z].*)$", line)
        if match:
            del lines[k]
            first = next(i for i, text in enumerate(lines) if text.strip())
            lines[first] = f"{match.group(1)}: {lines[first].lstrip()}"
            while lines and not lines[-1].strip():
                lines.pop()
            return


def _plain_aliases(app, what, name, obj, options, signature, return_annotation):
    """``ArrayLike | None`` renders as ``TypeAliasForwardRef('jax.typing.ArrayLike') | None``: show the alias."""
    def plain(text):
        return None if text is None else re.sub(r"TypeAliasForwardRef\('([^']+)'\)", r"\1", text)

    return plain(signature), plain(return_annotation)


def setup(app):
    app.connect("autodoc-process-signature", _plain_aliases)
    app.connect("autodoc-process-docstring", _sentence_not_type, priority=600)
    app.connect("autodoc-process-docstring", _join_wrapped_fields, priority=400)
    app.connect("autodoc-process-docstring", _drop_type_docstrings)
    app.connect("autodoc-process-docstring", _keep_literals_whole)

# --- Notebooks (MyST markdown), executed at every build --------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
nb_execution_mode = "force"
nb_execution_timeout = 120  # seconds per cell
nb_execution_raise_on_error = True  # any cell error fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_render_markdown_format = "myst"  # markdown outputs (the README's and the runs' tables) with tables
# The notebooks' kernel "python3" is ipykernel in this Python (jupyter_client runs "python" as sys.executable), with
# the kernel's own log at ERROR: its notice about unencrypted local TCP sockets is not part of any page.
os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(DOCS / "_kernels"), os.environ.get("JUPYTER_PATH")]))

# --- Cross-links to JAX, Flax, optax, NumPy and Python: inventories shipped in docs/_inventories ------------------
# The build runs without internet (CI), so the object inventories are not downloaded: each project's entries live
# as plain text in docs/_inventories/<project>.txt ("name role uri", uri relative to the project's site) and are
# compiled into Sphinx's objects.inv format here. A name the docs link to must be listed there.
_SITES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "jax": "https://docs.jax.dev/en/latest/",
    "flax": "https://flax.readthedocs.io/en/latest/",
    "optax": "https://optax.readthedocs.io/en/latest/",
    "orbax": "https://orbax.readthedocs.io/en/latest/",
}


def _compile_inventory(project: str) -> str:
    lines = []
    for raw in (DOCS / "_inventories" / f"{project}.txt").read_text().splitlines():
        if raw.strip() and not raw.startswith("#"):
            name, role, uri = raw.split()
            lines.append(f"{name} {role} 1 {uri} -\n")
    out = DOCS / "_build" / "inventories" / f"{project}.inv"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n"
    header += "# The remainder of this file is compressed using zlib.\n"
    out.write_bytes(header.encode() + zlib.compress("".join(lines).encode()))
    return str(out)


intersphinx_mapping = {name: (url, _compile_inventory(name)) for name, url in _SITES.items()}

# --- HTML -------------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "dammem"
html_theme_options = {"show_toc_level": 2, "navigation_with_keys": False}
html_static_path: list[str] = []
