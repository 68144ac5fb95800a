"""What every page shares: the head (our style sheet, no favicon request), the navigation bar,
the embedded data, and the small formatting helpers (a value with its interval)."""
from __future__ import annotations

import html
import json
import math

from edgebench.host.publish import assets

NAV_START, NAV_END = "<!--eb-nav-->", "<!--/eb-nav-->"
HEAD_MARK = "<!--eb-head-->"
# No favicon request (a server would answer 404, a console error) and no referrer to anyone.
HEAD = ('<link rel="icon" href="data:,"><meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">')

SECTIONS = (("index.html", "Series"), ("changes.html", "Changes"),
            ("compare/index.html", "Compare"))


def esc(text) -> str:
    return html.escape("" if text is None else str(text))


def nav(root: str, here: str = "", extra: str = "") -> str:
    links = "".join(f'<a href="{root}{href}"{" class=eb-here" if href == here else ""}>'
                    f"{name}</a>" for href, name in SECTIONS)
    return (f'<nav class="eb-nav"><a class="eb-brand" href="{root}index.html">'
            f"edgebench results</a>{links}{extra}</nav>")


def data_script(data) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    # inside <script>, "</" would end the element
    return ('<script type="application/json" id="eb-data">'
            + text.replace("</", "<\\/") + "</script>")


def page(title: str, body: str, root: str, here: str = "", data=None,
         plots: bool = False) -> str:
    scripts = []
    if data is not None:
        scripts.append(data_script(data))
    if plots:
        scripts.append(f'<script src="{root}{assets.PLOTLY_JS}"></script>')
    scripts.append(f'<script src="{root}{assets.SITE_JS}"></script>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title>{HEAD}"
            f'<link rel="stylesheet" href="{root}{assets.SITE_CSS}"></head>\n'
            f'<body class="eb-site">\n{nav(root, here)}\n<main>\n{body}\n</main>\n'
            + "\n".join(scripts) + "\n</body></html>\n")


def inject(text: str, block: str, root: str) -> str:
    """A page made elsewhere (a run's report.html, compare.html) with our head and `block` (the
    navigation and what goes above the page) added, or replaced when it has them already."""
    nav_html = NAV_START + block + NAV_END
    if NAV_START in text:
        start, end = text.index(NAV_START), text.index(NAV_END) + len(NAV_END)
        text = text[:start] + nav_html + text[end:]
    else:
        text = text.replace("<body>", "<body>\n" + nav_html, 1)
    if HEAD_MARK not in text:
        text = text.replace("</head>", f'{HEAD_MARK}{HEAD}<link rel="stylesheet" '
                                       f'href="{root}{assets.SITE_CSS}"></head>', 1)
    return text


def num(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.{digits}g}"


def with_interval(triple, digits: int = 4) -> str:
    """'1.234 (1.20–1.27)' from [value, low, high]; blank when there is no value."""
    value, low, high = (list(triple) + [None] * 3)[:3] if triple else (None,) * 3
    if value is None:
        return ""
    if low is None or high is None:
        return num(value, digits)
    return f"{num(value, digits)} ({num(low, digits)}–{num(high, digits)})"


def table(headers: list, rows: list, attrs: str = "", row_attrs: list | None = None,
          numeric: set | None = None) -> str:
    """An HTML table; cells are HTML already (escape text before)."""
    numeric = numeric or set()
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        extra = row_attrs[i] if row_attrs else ""
        cells = "".join(f'<td{" class=num" if j in numeric else ""}>{c}</td>'
                        for j, c in enumerate(row))
        body.append(f"<tr{extra}>{cells}</tr>")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def sparkline(values: list, width: int = 90, height: int = 22) -> str:
    """An inline SVG of a series (no script needed)."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    step = width / (len(vals) - 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
                   for i, v in enumerate(vals))
    return (f'<svg class="eb-spark" width="{width}" height="{height}" aria-hidden="true">'
            f'<polyline fill="none" stroke="#3a6ea5" stroke-width="1.5" points="{pts}"/></svg>')
