"""Check every internal link of the built site: the target file exists and, for ``page.html#anchor``, the page has
an element with that id. External links (http, https, mailto) are not followed (the build machine is offline).

Usage: ``python docs/check_links.py docs/_build/html``; prints each broken link and exits 1 if there is one.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name"):
            if values.get(name):
                self.ids.add(values[name])
        for name in ("href", "src"):
            if values.get(name) and not (tag == "link" and values.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(values[name])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(root: Path) -> list[str]:
    """``"page: link"`` for each internal link of the HTML files under ``root`` whose target or anchor is missing."""
    # Pages only: the theme's HTML templates under _static/ are assets, not pages.
    files = [path for path in root.rglob("*.html") if "_static" not in path.relative_to(root).parts]
    pages = {path.resolve(): _parse(path) for path in files}
    broken = []
    for path, page in sorted(pages.items()):
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(root.resolve())}: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(root.resolve())}: {link} (no such anchor)")
    return broken


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "docs/_build/html")
    if not root.is_dir():
        print(f"check_links: {root} is not a built site (run the docs build first)", file=sys.stderr)
        return 2
    broken = broken_links(root)
    for line in broken:
        print(f"broken link: {line}")
    count = sum(1 for p in root.rglob("*.html") if "_static" not in p.relative_to(root).parts)
    print(f"check_links: {count} pages, {len(broken)} broken internal links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
