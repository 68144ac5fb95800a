"""The MkDocs hook that makes the site from the code and the repository as they are:

- the reference pages (command line, registries, files and CSV columns) are generated from the
  argparse parsers, the registries and device/schema.py at build time, so they cannot drift;
- the default run's table is made from results/example/summary.csv (example_table.py);
- the home page is the README itself, and the pages that live beside the code
  (benchmarks/README.md, results/example/report.md) and the images any page links to
  (results/example/*.png, benchmarks/*.png) are served from where they are, not copied into
  docs/ by hand;
- a relative link written for GitHub (docs/devices.md linking ../benchmarks/README.md, the README
  linking docs/energy.md) is rewritten to where that file sits in the site, so one link works in
  both places and `mkdocs build --strict` checks it."""
from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli_reference  # noqa: E402
import csv_reference  # noqa: E402
import example_table  # noqa: E402
import registry_reference  # noqa: E402
from mkdocs.structure.files import File  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOCS = "docs"
# Pages that live beside the code they describe, served as they are (site path -> repo path).
REPO_PAGES = {"index.md": "README.md",
              "repo/benchmarks/README.md": "benchmarks/README.md",
              "repo/results/example/report.md": "results/example/report.md"}
GENERATED = {"reference/cli.md": cli_reference.page,
             "reference/registries.md": registry_reference.page,
             "reference/files.md": csv_reference.page}
# ](target) and ![..](target), with an optional "title"; reference definitions [x]: target
LINK = re.compile(r"(\]\(\s*<?)([^)\s>]+)(>?(?:\s+\"[^\"]*\")?\s*\))")
REF_DEF = re.compile(r"^(\s*\[[^\]]+\]:\s*)(\S+)", re.M)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)

# site path -> the repository path it comes from, for every page (filled by on_files)
_SOURCE: dict = {}


def site_path(repo_path: str) -> str:
    """Where a repository file is in the site."""
    if repo_path == "README.md":
        return "index.md"
    if repo_path.startswith(DOCS + "/"):
        return repo_path[len(DOCS) + 1:]
    return "repo/" + repo_path


def _targets(markdown: str):
    body = FENCE.sub("", markdown)
    for match in LINK.finditer(body):
        yield match.group(2)
    for match in REF_DEF.finditer(body):
        yield match.group(2)


def _local(target: str) -> bool:
    return not (re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")))


def _resolve(page_repo_path: str, target: str) -> str:
    path = target.split("#", 1)[0]
    return posixpath.normpath(posixpath.join(posixpath.dirname(page_repo_path), path))


def on_files(files, config):
    _SOURCE.clear()
    for f in files.documentation_pages():
        _SOURCE[f.src_uri] = f"{DOCS}/{f.src_uri}"
    made = {uri: make() for uri, make in GENERATED.items()}
    for uri, content in made.items():
        stub = files.get_file_from_path(uri)  # the text GitHub shows in place of the page
        if stub is not None:
            files.remove(stub)
        files.append(File.generated(config, uri, content=content))
        _SOURCE[uri] = f"{DOCS}/{uri}"
    for uri, repo_path in REPO_PAGES.items():
        files.append(File.generated(config, uri, abs_src_path=str(REPO / repo_path)))
        _SOURCE[uri] = repo_path
    # Files outside docs/ that a page links to (images, the benchmark scripts' pictures) are
    # served at repo/<path>; a link to a file that does not exist is left for --strict to report.
    served = {site_path(p) for p in _SOURCE.values()}
    for uri, repo_path in list(_SOURCE.items()):
        markdown = made[uri] if uri in made else (REPO / repo_path).read_text()
        for target in _targets(markdown):
            if not _local(target):
                continue
            linked = _resolve(repo_path, target)
            where = site_path(linked)
            if (linked.startswith("..") or where in served or linked.startswith(DOCS + "/")
                    or not (REPO / linked).is_file()):
                continue
            files.append(File.generated(config, where, abs_src_path=str(REPO / linked)))
            served.add(where)
    return files


def _rewrite(page_uri: str, target: str) -> str:
    if not _local(target):
        return target
    repo_path = _SOURCE.get(page_uri, f"{DOCS}/{page_uri}")
    anchor = "#" + target.split("#", 1)[1] if "#" in target else ""
    if not target.split("#", 1)[0]:
        return target
    linked = _resolve(repo_path, target)
    if linked.startswith(".."):
        return target
    new = posixpath.relpath(site_path(linked), posixpath.dirname(page_uri) or ".")
    return new + anchor


def on_page_markdown(markdown, page, config, files):
    uri = page.file.src_uri
    if example_table.EXAMPLE_TABLE_MARKER in markdown:
        markdown = markdown.replace(example_table.EXAMPLE_TABLE_MARKER, example_table.table())
    out, last = [], 0
    for fence in FENCE.finditer(markdown):  # links inside code blocks are left as written
        out.append(_rewrite_text(uri, markdown[last:fence.start()]))
        out.append(fence.group(0))
        last = fence.end()
    out.append(_rewrite_text(uri, markdown[last:]))
    return "".join(out)


def _rewrite_text(uri: str, text: str) -> str:
    text = LINK.sub(lambda m: m.group(1) + _rewrite(uri, m.group(2)) + m.group(3), text)
    return REF_DEF.sub(lambda m: m.group(1) + _rewrite(uri, m.group(2)), text)
