"""The documentation's API reference lists every public name, and its internal-link check finds broken links.

Fast: the API pages are generated (text only, as the docs build does first) without building the site. When a
site has been built (``docs/_build/html``) after the last change to the package, its object inventory is compared
with the package as well.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# The modules whose every public name must appear in the reference.
REQUIRED = ["dammem", "dammem.nn", "dammem.drdam", "dammem.uhop", "dammem.vsa", "dammem.sharding"]
# Names a package binds for its own use (no __all__ says otherwise): not part of its API.
NOT_API = {"annotations", "importlib", "ModuleType"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def expected_public(module_name: str) -> set[str]:
    """``__all__``, or else every name the module binds without an underscore that is not a module or a helper."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return set(module.__all__) - {n for n in module.__all__ if isinstance(getattr(module, n), types.ModuleType)}
    return {
        n for n in dir(module)
        if not n.startswith("_") and n not in NOT_API and not isinstance(getattr(module, n), types.ModuleType)
    }


def _autosummary_entries(page: str) -> set[str]:
    block = page.split(".. autosummary::", 1)[1]
    return {line.strip() for line in block.splitlines() if line.startswith("   ") and not line.strip().startswith(":")}


@pytest.fixture(scope="module")
def api_pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    _load("_apigen").write_api_pages(out)
    return out


@pytest.mark.parametrize("module_name", REQUIRED)
def test_api_page_lists_every_public_name(api_pages, module_name):
    page = (api_pages / f"{module_name}.rst").read_text()
    assert f".. automodule:: {module_name}" in page
    listed = _autosummary_entries(page)
    expected = expected_public(module_name)
    assert expected, module_name
    assert listed == expected, (sorted(expected - listed), sorted(listed - expected))


def test_api_index_links_every_module_page(api_pages):
    index = (api_pages / "index.rst").read_text()
    toctree = index.split(".. toctree::", 1)[1]
    pages = {p.stem for p in api_pages.glob("dammem*.rst")}
    assert set(REQUIRED) <= pages
    assert {line.strip() for line in toctree.splitlines()[2:] if line.strip()} == pages


def test_built_inventory_has_every_public_name():
    inventory = DOCS / "_build" / "html" / "objects.inv"
    if not inventory.is_file():
        pytest.skip("no docs build (docs/_build/html): the build itself is checked in CI")
    newest = max(p.stat().st_mtime for p in (ROOT / "dammem").rglob("*.py"))
    if inventory.stat().st_mtime < newest:
        pytest.skip("the docs build is older than the package: rebuild to compare")
    inv_module = pytest.importorskip("sphinx.util.inventory")
    with inventory.open("rb") as f:
        data = inv_module.InventoryFile.load(f, "", lambda base, uri: uri)
    documented = set()
    for role, entries in (data.data if hasattr(data, "data") else data).items():
        if role.startswith("py:"):
            documented |= set(entries)
    missing = [f"{m}.{n}" for m in REQUIRED for n in sorted(expected_public(m)) if f"{m}.{n}" not in documented]
    assert not missing


def test_check_links_finds_missing_pages_and_anchors(tmp_path):
    check = _load("check_links")
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#here">ok</a> <a href="sub/page.html#gone">bad anchor</a> '
        '<a href="missing.html">bad page</a> <a href="https://example.org/x.html">external</a> '
        '<img src="_static/logo.png"> <a href="#top">self</a><div id="top"></div>'
    )
    (tmp_path / "sub" / "page.html").write_text('<h1 id="here">x</h1><a href="../index.html">up</a>')
    broken = check.broken_links(tmp_path)
    assert sorted(re.sub(r" \(.*\)$", "", b) for b in broken) == [
        "index.html: _static/logo.png", "index.html: missing.html", "index.html: sub/page.html#gone"]
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "logo.png").write_bytes(b"")
    (tmp_path / "sub" / "page.html").write_text('<h1 id="here">x</h1><a id="gone"></a>')
    (tmp_path / "missing.html").write_text("")
    assert check.broken_links(tmp_path) == []
