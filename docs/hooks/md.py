"""Markdown helpers for the generated reference pages: text from the code (help strings, registry
summaries, column descriptions) goes into tables, where a `|`, a `<run-id>` or a `*` in a path
would break the table, start an HTML tag or turn on italics."""
from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\*_\[\]|])")
_CODE = re.compile(r"(`[^`]*`)")


def text(value) -> str:
    """Plain text from the code as Markdown that renders as written; `code spans` stay code."""
    out = []
    for part in _CODE.split(str(value)):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part)  # Python-Markdown's tables do not split cells at a pipe in code
        else:
            part = _SPECIAL.sub(r"\\\1", part).replace("<", "&lt;").replace(">", "&gt;")
            out.append(part.replace("\n", " "))
    return "".join(out)


def code(value) -> str:
    """A code span of any text (backticks inside get a longer fence)."""
    value = str(value) if value != "" else '""'
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def table(header, rows) -> str:
    """A Markdown table; every cell is taken as already formatted."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) if c not in (None, "") else " " for c in row)
                     + " |")
    return "\n".join(lines)


def block(value: str, lang: str = "text") -> str:
    return f"```{lang}\n{value.rstrip()}\n```"
