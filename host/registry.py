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


def describe(table: Mapping[str, object], what: str) -> str:
    """A listing for `--X help`: one line per entry with its summary (its `summary` or docstring)."""
    width = max((len(n) for n in table), default=0)
    lines = [f"{what}s:"]
    for name, entry in table.items():
        summary = getattr(entry, "summary", None) or (getattr(entry, "__doc__", "") or "").strip()
        lines.append(f"  {name:<{width}}  {summary.splitlines()[0] if summary else ''}")
    return "\n".join(lines)
