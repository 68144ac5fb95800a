"""The documentation site, checked like code: it builds with `mkdocs build --strict` (a broken
link, page or anchor fails), its reference pages hold every command, option, registry entry and
CSV column the code has, every `bench-host` line in the docs and the README parses with the
current command line, the README's example table is the one results/example/summary.csv gives,
and two pages, drawn by headless Chromium, show the theme's header and their text."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from docs_screens import PAGES, WINDOW, build_site, chromium, shoot

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs" / "hooks"))

import cli_reference  # noqa: E402
import csv_reference  # noqa: E402
import example_table  # noqa: E402

# Material's header in the indigo palette mkdocs.yml picks: drawn only when the theme's CSS loaded
HEADER_RGB = (0x40, 0x51, 0xB5)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = build_site(out)
    assert built.returncode == 0, built.stderr[-3000:]
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in ("index.html", "getting-started.html", "architecture.html", "results-site.html",
                 "reference/cli.html", "reference/registries.html", "reference/files.html",
                 "repo/benchmarks/index.html", "repo/results/example/report.html"):
        assert (site / page).is_file(), page
    # pictures linked from the README and the guides are served from where the code writes them
    for picture in ("repo/results/example/latency_accuracy_local.png",
                    "repo/benchmarks/runtimes_op_shares.png"):
        assert (site / picture).stat().st_size > 1000, picture


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The check above can fail: the same tree with one link to a missing page does not build."""
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "docs", tree / "docs")
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    for folder in ("benchmarks", "results"):  # what the hook serves from outside docs/
        (tree / folder).symlink_to(REPO / folder)
    page = tree / "docs" / "robustness.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                            str(tmp_path / "site")], cwd=tree, capture_output=True, text=True,
                           env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), timeout=600)
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr


def test_the_site_needs_nothing_from_the_network(site):
    """Fonts, scripts and styles are the site's own: it reads offline, as the suite builds it."""
    remote = re.compile(r"""<(?:link|script|img)\b[^>]*\b(?:href|src)=["']?(?:https?:)?//""")
    for page in site.rglob("*.html"):
        assert not remote.search(page.read_text()), page


def _html_text(path: Path) -> str:
    return _html_text_of(path.read_text())


def _html_text_of(markup: str) -> str:
    import html
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_every_command_and_option_is_in_the_reference(site):
    from edgebench.host.cli import COMMANDS
    text = _html_text(site / "reference" / "cli.html")
    lines = [line for line, _ in cli_reference.commands()]
    for module in COMMANDS:  # every command the CLI offers has its section
        assert f"bench-host {module.rstrip('_')}" in lines
    for line, parser in cli_reference.commands():
        assert line in text, line
        for option in cli_reference.options(parser):
            assert option in text, (line, option)


def test_every_registry_entry_is_in_the_reference(site):
    from edgebench.device.power import POWER_SOURCES
    from edgebench.device.runtimes import FILE_RUNTIMES, RUNTIME_HELP
    from edgebench.device.units import COMPUTE_UNITS
    from edgebench.host.compare.gate import METRICS
    from edgebench.host.compare.pairs import MATCH_FIELDS
    from edgebench.host.data import DATASETS
    from edgebench.host.data.corruptions import CORRUPTIONS
    from edgebench.host.emulate.images import IMAGES
    from edgebench.host.export.converters import CONVERTERS
    from edgebench.host.export.recipes import RECIPES
    from edgebench.host.profiles import PROFILES
    from edgebench.host.targets import TARGETS
    from edgebench.models import MODELS
    text = _html_text(site / "reference" / "registries.html")
    registries = (MODELS, DATASETS, RECIPES, CONVERTERS, PROFILES, TARGETS, COMPUTE_UNITS,
                  RUNTIME_HELP, POWER_SOURCES, CORRUPTIONS, IMAGES, MATCH_FIELDS, METRICS)
    for registry in registries:
        for name in registry:
            assert name in text, name
    for spec in FILE_RUNTIMES.values():
        assert spec["name"] in text
    for corruption in CORRUPTIONS.values():  # an entry's details, not only its name
        assert corruption.help in text


def test_every_csv_column_has_a_unit_and_meaning_in_the_reference(site):
    from edgebench.device import schema, schema_docs
    assert csv_reference.missing_descriptions() == [], (
        "describe these columns in device/schema_docs.py")
    html = (site / "reference" / "files.html").read_text()
    for record in schema.RECORDS:
        anchor = '<h2 id="%s"' % re.sub(r"[^\w-]", "", record.file)
        assert anchor in html, record.file
        section = _html_text_of(html.split(anchor, 1)[1].split("<h2 ", 1)[0])
        for column in record.columns:
            meaning = schema_docs.describe(record.file, column.name)[1]
            assert column.name in section and meaning.replace("`", "") in section.replace(
                "`", ""), (record.file, column.name)
    assert not any(k for k in schema_docs.PER_FILE
                   if k[1] not in dict((r.file, r.names) for r in schema.RECORDS).get(k[0], ())), \
        "schema_docs.PER_FILE names a column its file does not have"


def test_the_readme_example_table_is_the_one_summary_csv_gives():
    assert example_table.table() in (REPO / "README.md").read_text(), (
        "results/example changed: copy example_table.table() into the README")


def test_the_readme_is_a_short_landing_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 150, len(lines)


# --- every bench-host line in the docs parses --------------------------------------------------

DOC_FILES = [REPO / "README.md"] + sorted((REPO / "docs").rglob("*.md"))
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"`((?:bench-host|python3 agent\.pyz) [^`]*|bench-host)`")
PROMPT = re.compile(r"^\s*(?:\$\s+)?((?:bench-host|python3 agent\.pyz)\b.*)$")


def command_lines(text: str) -> list:
    """The bench-host (and agent) command lines of a Markdown text: lines of its code blocks,
    continuation lines joined, and its inline code spans."""
    found = []
    for match in FENCE.finditer(text):
        if match.group(1).strip() not in ("", "bash", "sh", "shell", "console"):
            continue
        lines = match.group(2).splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1].rstrip() + " " + lines[i].strip()
            hit = PROMPT.match(line)
            if hit:
                found.append(hit.group(1))
            i += 1
    body = FENCE.sub("", text)
    found += [m.group(1) for m in SPAN.finditer(body)]
    return found


def tokens(line: str) -> list:
    """The words of a documented command line, with its placeholders made concrete: [optional]
    parts kept, `a|b|c` alternatives read as their first, `…` dropped, comments cut."""
    line = re.sub(r"(^|\s)\[", r"\1", line)
    line = re.sub(r"\](?=\s|$)", "", line)
    words = shlex.split(line, comments=True)
    out = []
    for word in words:
        if word in ("…", "..."):
            continue
        if re.fullmatch(r"[\w.-]+(\|[\w.-]+)+", word):
            word = word.split("|")[0]
        out.append(word)
    return out


def parse_error(line: str) -> str | None:
    """None when the line parses with the current command line, else what argparse said. A bare
    `bench-host NAME [SUB]` is a mention of a command: it must name one."""
    from edgebench.device.agent.cli import build_parser as agent_parser
    from edgebench.host.cli import build_parser
    words = tokens(line)
    agent = words[:2] == ["python3", "agent.pyz"]
    parser, argv = (agent_parser(), words[2:]) if agent else (build_parser(), words[1:])
    known = [name for name, _ in cli_reference.commands()]
    if not agent and argv[:1] == ["COMMAND"]:  # `bench-host COMMAND --help`: every command
        return next(filter(None, (parse_error(" ".join([c] + argv[1:]))
                                  for c in known if c.count(" ") == 1)), None)
    if not agent and " ".join(["bench-host"] + argv) in known:
        return None  # a mention of a command (or the bare `bench-host`)
    if not agent and len(argv) == 1:
        return f"no command {argv[0]!r}"
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            parser.parse_args(argv)
    except SystemExit as exc:
        return None if not exc.code else err.getvalue().strip().splitlines()[-1]
    except Exception as exc:  # the agent's parser raises its one-line AgentError
        return str(exc)
    return None


def test_the_line_checker_finds_and_rejects_bad_lines():
    text = ("```bash\nbench-host deploy --target pi \\\n    --no-such-flag 3   # comment\n```\n"
            "and `bench-host quantize --recipes help`, `bench-host nosuchcommand`.")
    lines = command_lines(text)
    assert lines == ["bench-host deploy --target pi --no-such-flag 3   # comment",
                     "bench-host quantize --recipes help", "bench-host nosuchcommand"]
    assert "--no-such-flag" in parse_error(lines[0])
    assert parse_error(lines[1]) is None
    assert parse_error(lines[2])
    assert parse_error("bench-host deploy --accelerators tpu")  # a registry value is checked
    assert parse_error("bench-host history --model r18.int8 [--metric p50|accuracy]") is None
    assert parse_error("python3 agent.pyz --bundle DIR --out DIR --rounds x")


def test_every_bench_host_line_in_the_docs_parses():
    checked, failures = {}, []
    for path in DOC_FILES:
        for line in command_lines(path.read_text()):
            checked[path.name] = checked.get(path.name, 0) + 1
            error = parse_error(line)
            if error:
                failures.append(f"{path.relative_to(REPO)}: {line}\n    {error}")
    assert not failures, "\n".join(failures)
    # the check reads every page that shows commands, the README included
    for page in ("README.md", "getting-started.md", "devices.md", "board-farms.md", "energy.md",
                 "compare.md", "accelerators.md", "conversion.md", "onnx-runtime.md",
                 "training.md", "own-data.md"):
        assert checked.get(page, 0) > 0, page
    assert sum(checked.values()) >= 60, checked


# --- two pages as a browser draws them ---------------------------------------------------------

def test_two_pages_look_right_in_headless_chromium(site, tmp_path):
    binary = chromium()
    if not binary:
        if os.environ.get("EDGEBENCH_REQUIRE_BROWSER"):
            pytest.fail("EDGEBENCH_REQUIRE_BROWSER is set but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    for page in PAGES:
        png = tmp_path / (page.replace("/", "-") + ".png")
        shoot(site / page, png, binary)
        image = Image.open(png).convert("RGB")
        assert image.size == WINDOW, (page, image.size)
        header = image.crop((0, 0, WINDOW[0], 40)).getcolors(WINDOW[0] * 40)
        header_share = sum(n for n, rgb in header if _near(rgb, HEADER_RGB)) / (WINDOW[0] * 40)
        assert header_share > 0.8, (page, "the theme's header is missing: its CSS did not load")
        body = image.crop((280, 90, 1000, WINDOW[1]))
        dark = sum(n for n, rgb in body.getcolors(720 * 810) if max(rgb) < 120)
        assert dark > 2000, (page, "no text drawn in the page's body")


def _near(rgb, target, tolerance=12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, target))


def test_argparse_internals_the_reference_reads_are_there():
    """cli_reference walks argparse's parsers through private attributes; if a Python release
    renamed them the reference would silently lose commands."""
    from edgebench.host.cli import build_parser
    parser = build_parser()
    assert any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
    assert len(list(cli_reference.subcommands(parser, "bench-host"))) >= 13
