"""The report as a short list of blocks (headings, paragraphs, tables, images, lists), written out
twice: Markdown beside its PNGs, and one self-contained HTML file with the PNGs embedded; and the
headline table as plain text for the terminal."""
from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from edgebench.host.report.formats import fmt_delta_short, looks_numeric, text_table
from edgebench.host.report.tables import device_table, devices

Block = tuple  # ("h1"|"h2"|"h3"|"p", text) | ("table", DataFrame) | ("img", caption, Path)
#                | ("ul", [text, ...])


@dataclass
class Document:
    title: str
    blocks: list[Block]


# What heads the report, in order: label, then the env.json / results.csv keys that hold it.
ENV_FIELDS = (
    ("device model", ("device_model",)),
    ("machine", ("machine",)),
    ("CPU", ("cpu",)),
    ("cores", ("cores",)),
    ("CPU governor", ("governor",)),
    ("CPU frequency (MHz)", ("freq_mhz",)),
    ("SoC temperature at start (°C)", ("temp_c",)),
    ("OS", ("os",)),
    ("Python", ("python",)),
    ("numpy", ("numpy",)),
    ("interpreter", ("runtime",)),
    ("interpreter version", ("runtime_version",)),
    ("host name", ("hostname",)),
    ("run id", ("run_id",)),
    ("started (UTC)", ("started_utc",)),
)


def _text(value) -> str:
    if value is None or (not isinstance(value, (dict, list)) and pd.isna(value)):
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def environment_table(rows: pd.DataFrame, env: dict[str, dict]) -> pd.DataFrame:
    """One column per device: env.json's value for each field, else the first result row's,
    then how many rows ran throttled or emulated."""
    labels = [label for label, _ in ENV_FIELDS] + ["throttled rows", "emulated"]
    table = {"": labels}
    for dev in dict.fromkeys(rows["device"]):
        d = rows[rows["device"] == dev]
        first, dev_env = d.iloc[0], env.get(dev, {})
        values = []
        for _, keys in ENV_FIELDS:
            found = next((dev_env[k] for k in keys if _text(dev_env.get(k))), None)
            if found is None:
                found = next((first[k] for k in keys if k in first and _text(first[k])), None)
            values.append(_text(found))
        values.append(f"{int(d['throttled'].sum())} of {len(d)}")
        values.append("yes (timings not representative)" if d["emulated"].any() else "no")
        table[dev] = values
    df = pd.DataFrame(table)
    # Sensors a device lacks (governor, frequency on a VM) would only add blank lines.
    filled = df.drop(columns=[""]).apply(lambda r: any(str(v) for v in r), axis=1)
    return df[filled].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Markdown

def _md_cell(value) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _md_table(df: pd.DataFrame) -> str:
    cols = [_md_cell(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def to_markdown(doc: Document, relative_to: Path) -> str:
    out = [f"# {doc.title}"]
    for block in doc.blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * (int(kind[1]) + 1) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            out.append(_md_table(block[1]))
        elif kind == "img":
            rel = Path(block[2]).relative_to(relative_to).as_posix()
            out.append(f"![{block[1]}]({rel})")
    return "\n\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# HTML (no external references: styles inline, images as data: URIs)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; }
tr.flagged td { background: #fff4e5; }
tr.error td { background: #fde8e8; }
img { max-width: 100%; border: 1px solid #ddd; }
figure { margin: 1em 0 2em; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    flag_col = list(df.columns).index("flags") if "flags" in df.columns else None
    for row in df.itertuples(index=False):
        cls = ""
        if flag_col is not None and str(row[flag_col]):
            cls = ' class="error"' if str(row[flag_col]).startswith("error") else \
                ' class="flagged"'
        cells = "".join(
            f'<td{"" if looks_numeric(v) or not str(v) else " class=text"}>'
            f"{html.escape(str(v))}</td>" for v in row)
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def to_html(doc: Document) -> str:
    parts = [f"<h1>{html.escape(doc.title)}</h1>"]
    for block in doc.blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            level = int(kind[1]) + 1
            parts.append(f"<h{level}>{html.escape(block[1])}</h{level}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "ul":
            items = "".join(f"<li>{html.escape(i)}</li>" for i in block[1])
            parts.append(f"<ul>{items}</ul>")
        elif kind == "table":
            parts.append(_html_table(block[1]))
        elif kind == "img":
            data = base64.b64encode(Path(block[2]).read_bytes()).decode("ascii")
            caption = html.escape(block[1])
            parts.append(f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{caption}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head>"
            f"<body>\n{chr(10).join(parts)}\n</body></html>\n")


# ----------------------------------------------------------------------------------------------
# The terminal

HEADLINE_COLUMNS = ("model", "recipe", "unit", "threads", "size (MB)", "accuracy (%)",
                    "Δ acc vs fp32 (pp)", "p50 (ms)", "speedup vs fp32", "speedup vs CPU", "flags")


def headline(summary: pd.DataFrame) -> str:
    """The headline table as text, one block per device: what `bench-host run` prints at the
    end."""
    blocks = []
    for dev in devices(summary):
        t = device_table(summary, dev)
        d = summary[summary["device"] == dev].reset_index(drop=True)
        # The terminal gets the difference and its p-value, the report the whole sentence.
        t["Δ acc vs fp32 (pp)"] = [fmt_delta_short(v, p)
                                  for v, p in zip(d["delta_accuracy_pp"], d["mcnemar_p"])]
        t = t[[c for c in HEADLINE_COLUMNS if c in t.columns]].copy()
        # A long stack message would wrap every line of a terminal table.
        t["flags"] = t["flags"].map(lambda f: f if len(f) <= 70 else f[:67] + "...")
        blocks.append(f"{dev}\n{text_table(t)}")
    return "\n\n".join(blocks)
