"""Name lookups shared by every axis (models, data sets, recipes, targets, profiles)."""
from __future__ import annotations

from typing import Mapping, TypeVar

from edgebench.host.errors import UserError

T = TypeVar("T")


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """Return table[name], or raise a UserError that lists the valid names."""
    try:
        return table[name]
    except KeyError:
        raise UserError(f"unknown {what} {name!r}; choose one of: {', '.join(table)}") from None


def pick(table: Mapping[str, object], text: str, what: str) -> list[str]:
    """'a,b' (or 'all') -> those names in the table's order; an empty list or an unknown name is a
    UserError listing the valid ones. For the options that take several names of one axis."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"no {what} given; choose from: {', '.join(table)}")
    if names == ["all"]:
        return list(table)
    for n in names:
        lookup(table, n, what)
    return [n for n in table if n in names]


def describe(table: Mapping[str, object], what: str) -> str:
    """A listing for `--X help`: one line per entry with its summary (its `summary` or docstring)."""
    width = max((len(n) for n in table), default=0)
    lines = [f"{what}s:"]
    for name, entry in table.items():
        summary = getattr(entry, "summary", None) or (getattr(entry, "__doc__", "") or "").strip()
        lines.append(f"  {name:<{width}}  {summary.splitlines()[0] if summary else ''}")
    return "\n".join(lines)
