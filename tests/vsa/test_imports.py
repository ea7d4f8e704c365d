"""No module of dammem.vsa (nor the shared butterfly) imports another module's underscore names."""

from __future__ import annotations

import ast
from pathlib import Path

import dammem

PACKAGE = Path(dammem.__file__).parent
FILES = sorted((PACKAGE / "vsa").glob("*.py")) + [PACKAGE / "_butterfly.py"]


def _private_imports(path: Path) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            bad += [f"from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            # module._name access (e.g. krop._row_kernel); self._x / cls._x / book._x are the object's own
            if isinstance(node.value, ast.Name) and node.value.id not in ("self", "cls", "book", "jax", "lax"):
                bad.append(f"{node.value.id}.{node.attr}")
    return bad


def test_no_module_imports_another_modules_underscore_names():
    assert len(FILES) >= 7
    found = {path.name: _private_imports(path) for path in FILES}
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_the_checker_catches_both_forms(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from dammem.vsa.hrr import _bind\nfrom dammem.vsa import krop\nkrop._row_kernel\n")
    assert _private_imports(probe) == ["from dammem.vsa.hrr import _bind", "krop._row_kernel"]
