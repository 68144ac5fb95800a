"""Options that take a registry name (`--model(s)`, `--recipes`, `--data`, `--accelerators`,
`--runtime`, `--robustness`, `--profile`, `--target`, `--power`): on every command that has one, `help`
prints the registry's own listing (name and one line each) and exits at parse time, so no other
argument is needed. A value that can be checked without heavy imports is checked here too."""
from __future__ import annotations

import argparse


def _models() -> str:
    from edgebench.host.registry import describe
    from edgebench.models import MODELS
    return describe(MODELS, "model")


def _data() -> str:
    from edgebench.host.data import DATASETS
    from edgebench.host.registry import describe
    return describe(DATASETS, "data set") + "\n  (a data spec is NAME[:PATH or :N], e.g. busi:PATH)"


def _recipes() -> str:
    from edgebench.host.export.recipes import recipes_help
    return recipes_help()


def _accelerators() -> str:
    from edgebench.device.units import unit_help
    return (unit_help() + "\n  --delegate LIB[:key=value;...] adds an external delegate (Edge TPU, "
            "Arm NN, NXP VX, ...)")


def _runtime() -> str:
    from edgebench.device.runtimes import runtime_help
    return runtime_help()


def _robustness() -> str:
    from edgebench.host.data import corruptions
    return corruptions.describe()


def _power() -> str:
    from edgebench.device.power import power_help
    return power_help()


def _check_power(value: str) -> None:
    from edgebench.device.common import AgentError
    from edgebench.device.power import check_power
    try:
        check_power(value)
    except AgentError as exc:
        raise ValueError(str(exc)) from None


def _profile() -> str:
    from edgebench.host.profiles import PROFILES
    from edgebench.host.registry import describe
    return describe(PROFILES, "profile")


def _target() -> str:
    from edgebench.host.targets import describe_targets
    return (describe_targets() + "\n  --target local | user@host[:port] | ALIAS (from "
            "~/.ssh/config) | labgrid:PLACE; --inventory FILE for a fleet, "
            "--labgrid-tags KEY=VALUE,... for every labgrid place with those tags")


def _check_units(value: str) -> None:
    from edgebench.device.common import AgentError
    from edgebench.device.units import parse_units
    try:
        parse_units(value, [])
    except AgentError as exc:
        raise ValueError(str(exc)) from None


def _check_runtime(value: str) -> None:
    from edgebench.device.common import AgentError
    from edgebench.device.runtimes import check_runtime
    try:
        check_runtime(value)
    except AgentError as exc:
        raise ValueError(str(exc)) from None


# flag -> (the registry's listing, a check of a value, or None)
REGISTRY_OPTIONS = {
    "--model": (_models, None), "--models": (_models, None), "--recipes": (_recipes, None),
    "--data": (_data, None), "--accelerators": (_accelerators, _check_units),
    "--runtime": (_runtime, _check_runtime), "--robustness": (_robustness, None),
    "--profile": (_profile, None), "--target": (_target, None),
    "--power": (_power, _check_power),
}


class RegistryAction(argparse.Action):
    """Stores (or, with append=True, collects) the value; `help` prints the listing and exits 0."""

    def __init__(self, option_strings, dest, append: bool = False, **kwargs):
        self.append = append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        listing, check = REGISTRY_OPTIONS[self.option_strings[-1]]
        if value.strip() == "help":
            print(listing())
            parser.exit(0)
        if check is not None:
            try:
                check(value)
            except ValueError as exc:
                parser.error(str(exc))
        if self.append:
            getattr(namespace, self.dest).append(value)
        else:
            setattr(namespace, self.dest, value)


def add_registry_option(group, flag: str, help: str, **kwargs) -> None:
    """group.add_argument(flag, ...) for a registry option; its help says `help` lists it."""
    assert flag in REGISTRY_OPTIONS, flag
    if "'help' lists" not in help:
        help += " ('help' lists them)"
    group.add_argument(flag, action=RegistryAction, help=help, **kwargs)
