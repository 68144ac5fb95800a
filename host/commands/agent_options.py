"""The agent's measurement options as flags of `deploy` and `run`, made from their one
declaration (edgebench.device.options): the same flags, types and help as the agent's, with no
defaults here (the agent's own apply, and the help says which), so only what was given is sent.
What was given is parsed into one AgentOptions, which travels unchanged to the agent's argv."""
from __future__ import annotations

import argparse

from edgebench.device.options import ENERGY, MEASUREMENT, AgentOptions, option_fields
from edgebench.host.commands.registry_args import REGISTRY_OPTIONS, add_registry_option


def add_agent_args(p: argparse.ArgumentParser, groups=(MEASUREMENT, ENERGY),
                   renamed=None) -> None:
    """The options of these groups (options.MEASUREMENT, RUNNING, ENERGY), one argument group
    each; `renamed` gives an option another flag on this command (deploy's --only is the
    agent's --models)."""
    renamed = renamed or {}
    shown = dict((g, p.add_argument_group(g + " (passed to the agent on the device)"))
                 for g in groups)
    for name, flag, declared in option_fields():
        if declared.group not in shown:
            continue
        flag = renamed.get(name, flag)
        kwargs = declared.argparse_kwargs(None, "agent default")
        if flag in REGISTRY_OPTIONS:   # `help` lists the registry; the value is checked here
            add_registry_option(shown[declared.group], flag, **kwargs)
        else:
            shown[declared.group].add_argument(flag, **kwargs)


def agent_options_from(args, **more):
    """The AgentOptions given on this command line (`more`: fields under other names, e.g.
    deploy's --only is the agent's models), checked as the agent checks them: bad values are a
    UserError before any device is contacted."""
    from edgebench.device.common import AgentError
    from edgebench.host.errors import UserError

    try:
        return AgentOptions.from_namespace(args, **more).check()
    except AgentError as exc:
        raise UserError(str(exc)) from None
