"""Imports of dammem: no module uses another module's underscore names, the import graph has no circle, and
``import dammem`` loads neither flax, optax nor orbax (``dammem.nn`` and ``dammem.sharding`` load on first use).

Kernels that several modules need get public names in private modules (optax's ``_src`` pattern), so importing a
private *module* of dammem (``import dammem._butterfly``, ``from dammem.vsa import _kernels``) and a public name
from one (``from dammem._butterfly import fwht``) is fine; what is refused is an underscore *name* of another
module, in either form:

- ``from x import _name`` (also relative, ``from .x import _name``), where ``x._name`` is not a dammem module;
- ``mod._name`` (or ``pkg.mod._name``) with ``mod`` bound by an import in the file, where ``mod._name`` is not a
  dammem module; a private module of another package (``import jax._src.core``) counts as well.

``self._x``, ``cls._x`` and attributes of local objects are the object's own and never flagged; neither are dunder
names (``__version__``) nor the public NamedTuple API (``_replace``, ``_fields``, ...) on an imported class.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dammem

PACKAGE = Path(dammem.__file__).parent
ROOT = PACKAGE.parent
FILES = sorted(PACKAGE.rglob("*.py"))

# Underscore names that are a class's public API (collections.namedtuple / typing.NamedTuple).
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_field_defaults", "_make"}
# Underscore names that the standard library documents as public (os._exit: exit without cleanup handlers).
STDLIB_PUBLIC = {"os._exit"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_dammem_module(dotted: str, root: Path) -> bool:
    """True when ``dotted`` names a module or package of dammem (a file or folder under ``root``)."""
    if dotted != "dammem" and not dotted.startswith("dammem."):
        return False
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from <node.module> import ...``, resolving relative imports against ``module``."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None when the chain does not start at a plain name."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


def private_uses(path: Path, root: Path = ROOT) -> list[str]:
    """Every use in ``path`` of another module's underscore name, as the source would spell it."""
    module = _module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    bad: list[str] = []
    bound: dict[str, str] = {}  # local name -> dotted name of what the import bound to it

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if any(_is_private(p) for p in parts) and not _is_dammem_module(alias.name, root):
                    bad.append(f"import {alias.name}")
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[parts[0]] = parts[0]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            if any(_is_private(p) for p in source.split(".")) and not _is_dammem_module(source, root):
                bad.append(f"from {source} import ...")
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if _is_private(alias.name) and not _is_dammem_module(target, root):
                    bad.append(f"from {source} import {alias.name}")
                bound[alias.asname or alias.name] = target

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)) or node.attr in NAMEDTUPLE_API:
            continue
        chain = _dotted(node)
        if chain is None or chain[0] not in bound:
            continue  # self._x, cls._x, a local object's own attribute
        target = ".".join([bound[chain[0]], *chain[1:]])
        if target not in STDLIB_PUBLIC and not _is_dammem_module(target, root):
            bad.append(".".join(chain))
    return bad


def test_no_module_uses_another_modules_underscore_names():
    assert len(FILES) >= 30  # the walk sees the whole package (subpackages included)
    found = {path.relative_to(ROOT).as_posix(): private_uses(path) for path in FILES}
    assert {name: bad for name, bad in found.items() if bad} == {}


def _probe(tmp_path: Path, relative: str, source: str) -> list[str]:
    """Write ``source`` as ``relative`` inside a fake package root that also holds dammem's real module layout."""
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(tmp_path).parents:
        if str(parent) != ".":
            (tmp_path / parent / "__init__.py").touch()
    path.write_text(source)
    for name in ("_butterfly.py", "vsa/_kernels.py", "vsa/hrr.py", "vsa/krop.py", "experiments/_base.py"):
        probe = tmp_path / "dammem" / name
        probe.parent.mkdir(parents=True, exist_ok=True)
        (probe.parent / "__init__.py").touch()
        probe.touch()
    return private_uses(path, tmp_path)


def test_the_checker_catches_every_form(tmp_path):
    source = (
        "from dammem.vsa.hrr import _bind\n"
        "from .hrr import _correlate as corr\n"
        "from dammem.vsa import krop\n"
        "import dammem.vsa.krop as K\n"
        "import dammem\n"
        "import jax._src.core\n"
        "from jax._src import dtypes\n"
        "import jax\n"
        "krop._row_kernel\n"
        "K._row_kernel(1)\n"
        "dammem.vsa.krop._row_kernel\n"
        "jax._src\n"
    )
    assert sorted(_probe(tmp_path, "dammem/vsa/memory.py", source)) == sorted(
        [
            "from dammem.vsa.hrr import _bind",
            "from dammem.vsa.hrr import _correlate",
            "import jax._src.core",
            "from jax._src import ...",
            "krop._row_kernel",
            "K._row_kernel",
            "dammem.vsa.krop._row_kernel",
            "jax._src",
        ]
    )


def test_the_checker_allows_private_modules_public_names_and_own_attributes(tmp_path):
    source = (
        "from __future__ import annotations\n"
        "import dammem._butterfly\n"
        "import dammem._butterfly as bf\n"
        "from dammem._butterfly import fwht\n"
        "from dammem.vsa import _kernels\n"
        "from . import _kernels as kernels\n"
        "from .._butterfly import fwht as f\n"
        "from dammem.experiments._base import markdown_table\n"
        "from dammem import __version__\n"
        "from typing import NamedTuple\n"
        "dammem._butterfly.fwht\n"
        "bf.fwht\n"
        "_kernels.bind_kernel\n"
        "NamedTuple._fields\n"
        "import os\n"
        "os._exit(1)\n"
        "class A:\n"
        "    def f(self, other):\n"
        "        return self._x, other._y, type(self)._z\n"
    )
    assert _probe(tmp_path, "dammem/vsa/codebooks.py", source) == []


# ----------------------------------------------------------------------------------------------------------------
# The import graph of the package is acyclic
# ----------------------------------------------------------------------------------------------------------------


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """The dammem modules that ``path`` imports when it is loaded or type-checked.

    Every import statement counts: deferred ones inside a function body and ``if TYPE_CHECKING:`` blocks
    included (a deferred or type-only import back is still a circle between two modules). ``from pkg import name`` is an edge to the submodule
    ``pkg.name`` when that is a module, else to ``pkg``; the parent packages that Python initialises on the way are
    not edges (every submodule would otherwise form a circle with its package's ``__init__``).
    """
    module = _module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if _is_dammem_module(alias.name, root))
            continue
        source = _absolute(node, module, is_package)
        for alias in node.names:
            target = f"{source}.{alias.name}"
            if _is_dammem_module(target, root):
                found.add(target)
            elif _is_dammem_module(source, root):
                found.add(source)
    found.discard(module)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(_a_cycle_through(sorted(component), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _a_cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest circle from the first module of a strongly connected component back to itself (breadth first)."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, set()) & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")  # a strongly connected component always has one


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    return {_module_name(path, root): imported_modules(path, root) for path in sorted((root / "dammem").rglob("*.py"))}


def test_the_import_graph_is_acyclic():
    graph = import_graph()
    assert len(graph) >= 30 and sum(map(len, graph.values())) >= 60  # the walk sees the package and its imports
    assert import_cycles(graph) == []


def test_the_cycle_finder_sees_type_only_and_indirect_circles(tmp_path):
    files = {
        "dammem/__init__.py": "from dammem import a as a\n",
        "dammem/a.py": "from dammem.b import f\n",
        "dammem/b.py": "from . import c\n",
        "dammem/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dammem.a import A\n",
        "dammem/d.py": "def later():\n    from dammem import e\n",  # deferred: still an edge
        "dammem/e.py": "X = 1\n",
        "dammem/sub/__init__.py": "from .x import y\n",  # a package importing its submodule: no circle
        "dammem/sub/x.py": "from dammem.sub.z import w\n",
        "dammem/sub/z.py": "import numpy\n",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    graph = import_graph(tmp_path)
    assert graph["dammem.b"] == {"dammem.c"} and graph["dammem.d"] == {"dammem.e"} and graph["dammem.e"] == set()
    assert graph["dammem.sub"] == {"dammem.sub.x"} and graph["dammem.sub.x"] == {"dammem.sub.z"}
    assert import_cycles(graph) == [["dammem.a", "dammem.b", "dammem.c", "dammem.a"]]
    (tmp_path / "dammem/c.py").write_text("X = 1\n")
    assert import_cycles(import_graph(tmp_path)) == []


# ----------------------------------------------------------------------------------------------------------------
# `import dammem` stays light
# ----------------------------------------------------------------------------------------------------------------

HEAVY = {"flax", "optax", "orbax"}


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    return set(out.stdout.split())


def test_import_dammem_loads_no_flax_optax_or_orbax_and_nn_loads_on_first_use():
    assert _loaded_after("import dammem") & HEAVY == set()
    lazy = _loaded_after(
        "import dammem\n"
        "assert {'nn', 'sharding', 'uhop', 'vsa', 'retrieve'} <= set(dir(dammem))\n"
        "assert dammem.uhop.fit_kernel and 'optax' in sys.modules\n"
        "from dammem import nn\n"
        "assert nn is dammem.nn and nn is sys.modules['dammem.nn'] and hasattr(nn, 'Hopfield')\n"
        "assert dammem.sharding is sys.modules['dammem.sharding']\n"
        "try:\n"
        "    dammem.no_such_module\n"
        "except AttributeError as err:\n"
        "    assert 'no_such_module' in str(err)\n"
        "else:\n"
        "    raise SystemExit('dammem.no_such_module resolved')\n"
    )
    assert HEAVY <= lazy
