"""Writes the API reference pages (``docs/api/*.rst``) from the package itself, at every build.

Each documented module's public names are its ``__all__`` or, where a package defines none, its explicit
re-exports (``from x import name as name``, the convention every ``__init__`` of dammem follows). So a name added
to a module appears in the reference at the next build, and nothing is listed by hand.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

# (module, one line on what it is for): the order of the reference's table of contents.
MODULES = [
    ("dammem", "the core at top level: separations, similarities, energies' retrieval, attention"),
    ("dammem.separations", "softmax, sparsemax, entmax and their conjugates"),
    ("dammem.similarities", "similarity functions and learned kernels"),
    ("dammem.energies", "Hopfield, MrDAM and classical energies and updates"),
    ("dammem.dynamics", "retrieval: energy descent and fixed-point iteration"),
    ("dammem.attention", "multi-head Hopfield attention"),
    ("dammem.nn", "Flax NNX layers and checkpoints"),
    ("dammem.drdam", "random-feature dense associative memory"),
    ("dammem.uhop", "U-Hop: learned kernels for uniform retrieval"),
    ("dammem.vsa", "vector-symbolic memory: HRR, KROP codebooks"),
    ("dammem.sharding", "retrieval over a device mesh"),
    ("dammem.datasets", "bundled MNIST / CIFAR-10 subsets and loaders"),
    ("dammem.corruptions", "masks, occlusion and noise for queries"),
    ("dammem.experiments", "the experiment registry"),
]


def _reexports(module: types.ModuleType) -> list[str]:
    """Names bound by ``from x import name as name`` in the module's source, in source order."""
    tree = ast.parse(inspect.getsource(module))
    names = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names += [alias.name for alias in node.names if alias.asname == alias.name]
    return names


def public_names(module_name: str) -> list[str]:
    """The module's public names that are not modules: ``__all__``, or else its explicit re-exports."""
    module = importlib.import_module(module_name)
    names = list(getattr(module, "__all__", None) or _reexports(module))
    return [n for n in names if not isinstance(getattr(module, n), types.ModuleType)]


def write_api_pages(out_dir: Path) -> list[Path]:
    """Writes ``index.rst`` and one page per module into ``out_dir``; rewrites a file only when it changed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {}
    rows = "\n".join(f"   * - :mod:`{name}`\n     - {what}" for name, what in MODULES)
    pages["index.rst"] = (
        "API reference\n=============\n\n"
        "Generated from the package: each page lists its module's ``__all__`` (or, where a package defines none, "
        "its explicit re-exports).\n\n"
        ".. list-table::\n   :header-rows: 0\n\n" + rows + "\n\n"
        ".. toctree::\n   :hidden:\n\n" + "\n".join(f"   {name}" for name, _ in MODULES) + "\n"
    )
    for name, _ in MODULES:
        entries = "\n".join(f"   {n}" for n in public_names(name))
        pages[f"{name}.rst"] = (
            f"{name}\n{'=' * len(name)}\n\n"
            f".. automodule:: {name}\n   :no-members:\n\n"
            f".. currentmodule:: {name}\n\n"
            ".. rubric:: Public names\n\n"
            f".. autosummary::\n   :toctree: generated\n   :nosignatures:\n\n{entries}\n"
        )
    written = []
    for file, text in pages.items():
        path = out_dir / file
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def undocumented_modules() -> list[str]:
    """dammem's public modules without a page of their own (documented through the package that re-exports them)."""
    import pkgutil

    import dammem

    documented = {name for name, _ in MODULES}
    found = [m.name for m in pkgutil.walk_packages(dammem.__path__, "dammem.")]
    return sorted(m for m in found if m not in documented and not any(p.startswith("_") for p in m.split(".")))
