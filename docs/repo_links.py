"""MkDocs hook: links from the site's pages to files of the repository outside `docs/`.

Package READMEs and `benchmarks/RESULTS.md` are included into pages (the include-markdown
plugin, which rewrites their relative links to start from the including page), and some pages
link to a package folder, an image beside a README or a source file. This hook points a link to
an included file (or to the folder of an included README) at the page that includes it, and
copies any other linked repository file into the site under `repo/`, so `mkdocs build --strict`
checks every such link like a link between pages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
COPIED = "repo"  # site folder for repository files outside docs/ that pages link to
# Repository paths shown by a page that does not include them.
PAGES = {"examples/playground": "playground.md", "examples/playground/README.md": "playground.md"}

LINK = re.compile(r"(\]\()([^)\s]+)(\))")
INCLUDE = re.compile(r'\{%\s*include-markdown\s+"([^"]+)"')

_pages: dict[Path, str] = {}  # repository path -> src_uri of the page that shows it


def _target(base: Path, link: str) -> Path | None:
    """The repository path a relative link from `base` (a folder) points at, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", link):
        return None
    path = link.split("#", 1)[0]
    return (base / path).resolve() if path else None


def on_files(files: Files, config) -> Files:
    docs = Path(config.docs_dir).resolve()
    _pages.clear()
    _pages.update({ROOT / path: page for path, page in PAGES.items()})
    sources = []
    for page in files.documentation_pages():
        source = Path(page.abs_src_path)
        sources.append(source)
        for included in INCLUDE.findall(source.read_text(encoding="utf-8")):
            path = (source.parent / included).resolve()
            sources.append(path)
            _pages[path] = page.src_uri
            if path.name == "README.md":
                _pages[path.parent] = page.src_uri
    for source in sources:
        for _, link, _ in LINK.findall(source.read_text(encoding="utf-8")):
            path = _target(source.parent, link)
            if (
                path is None
                or path.is_relative_to(docs)
                or not path.is_relative_to(ROOT)
                or path in _pages
                or not path.is_file()
            ):
                continue
            uri = f"{COPIED}/{path.relative_to(ROOT).as_posix()}"
            if files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


@event_priority(-100)  # after include-markdown has put the included text in
def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    docs = Path(config.docs_dir).resolve()
    base = (docs / page.file.src_uri).parent

    def rewrite(match: re.Match) -> str:
        link = match.group(2)
        path = _target(base, link)
        if path is None or path.is_relative_to(docs) or not path.is_relative_to(ROOT):
            return match.group(0)
        anchor = "#" + link.split("#", 1)[1] if "#" in link else ""
        if path in _pages:
            uri = _pages[path]
        elif files.get_file_from_path(f"{COPIED}/{path.relative_to(ROOT).as_posix()}"):
            uri = f"{COPIED}/{path.relative_to(ROOT).as_posix()}"
        else:
            return match.group(0)  # left for --strict to report
        new = Path(os.path.relpath(docs / uri, base)).as_posix() + anchor
        return match.group(1) + new + match.group(3)

    return LINK.sub(rewrite, markdown)
