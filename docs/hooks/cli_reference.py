"""The command-line reference, from the argparse parsers themselves: `bench-host` and every
subcommand (host/cli.py builds them), and the agent's `python3 agent.pyz` (device/agent/cli.py).
A new command or option appears here without anyone writing it down."""
from __future__ import annotations

import argparse
import os
import re

import md


def subcommands(parser: argparse.ArgumentParser, prefix: str):
    """(command line, parser) of every subcommand under `parser`, depth first, in their order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from subcommands(sub, f"{prefix} {name}")


def commands() -> list:
    """[(command line, parser)] for `bench-host` and every subcommand, and the agent."""
    from edgebench.device.agent.cli import build_parser as agent_parser
    from edgebench.host.cli import build_parser

    root = build_parser()
    return [("bench-host", root)] + list(subcommands(root, "bench-host")) + [
        ("python3 agent.pyz", agent_parser())]


def options(parser: argparse.ArgumentParser) -> list:
    """Every option string and positional name the parser takes (hidden ones too)."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        out += list(action.option_strings) or [action.metavar or action.dest]
    return out


def _value(action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return str(action.metavar or action.dest.upper())


def _default(action) -> str:
    value = action.default
    if value in (None, False, argparse.SUPPRESS, "", []) or action.nargs == 0:
        return ""
    return md.code(value)


def _help(parser, action) -> str:
    if not action.help:
        return ""
    try:
        return parser._get_formatter()._expand_help(action)
    except (KeyError, TypeError, ValueError):
        return action.help


def _rows(parser, actions) -> list:
    rows = []
    for action in actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue  # listed as the parser's commands
        names = ", ".join(md.code(s) for s in action.option_strings) or md.code(
            action.metavar or action.dest)
        value = md.code(_value(action)) if action.option_strings and _value(action) else ""
        rows.append((names, value, _default(action), md.text(_help(parser, action))))
    return rows


def _slug(text: str) -> str:
    """The anchor MkDocs gives a heading of `text` in code (toc's default slugify)."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def page() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines at the terminal's width
    out = ["# Command line", "",
           "Generated from the argparse parsers when the site is built (`docs/hooks/"
           "cli_reference.py`): every `bench-host` command and the agent's own command line, "
           "with every option. `bench-host COMMAND --help` prints the same. An option that takes "
           "a registry name answers `help` ([registries](registries.md)).", ""]
    for line, parser in commands():
        depth = 2 if line.count(" ") <= 1 or line.startswith("python3") else 3
        out += ["#" * depth + " " + md.code(line), ""]
        if parser.description:
            out += [md.text(parser.description), ""]
        out += [md.block(parser.format_usage().strip()), ""]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                rows = [(f"[{md.code(c.dest)}](#{_slug(line + ' ' + c.dest)})",
                         md.text(c.help or "")) for c in action._choices_actions]
                out += ["**commands**", "", md.table(("command", "what it does"), rows), ""]
        for group in parser._action_groups:
            rows = _rows(parser, group._group_actions)
            if not rows:
                continue
            title = {"positional arguments": "arguments"}.get(group.title, group.title)
            header = ("option", "value", "default", "what it does")
            out += [f"**{md.text(title)}**", "", md.table(header, rows), ""]
        if line.startswith("python3") and parser.epilog:
            out += ["The agent's `--help` ends with this guide:", "", md.block(parser.epilog), ""]
    return "\n".join(out)
