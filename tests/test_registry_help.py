"""Every option that takes a registry name answers `help` on every command that has it, without
the command's other (required) arguments, with the registry's own names and one line each."""
from __future__ import annotations

import argparse

import pytest

from cli_runner import run_cli
from edgebench.host.cli import build_parser
from edgebench.host.commands.registry_args import REGISTRY_OPTIONS, RegistryAction


# Flags spelled like a registry option that name something else: `history --model` is a model
# stored in the results database (architecture.recipe), not an architecture.
NOT_A_REGISTRY = {("history", "--model")}


def registry_options() -> list:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for command, p in sub.choices.items():
        for action in p._actions:
            for flag in action.option_strings:
                if flag in REGISTRY_OPTIONS and (command, flag) not in NOT_A_REGISTRY:
                    found.append((command, flag, action))
    return found


OPTIONS = registry_options()


def names_of(flag: str) -> list:
    """The registry's own names, from the registry (not from the listing under test)."""
    if flag in ("--model", "--models"):
        from edgebench.models import MODELS
        return list(MODELS)
    if flag == "--recipes":
        from edgebench.host.export.recipes import RECIPES
        return list(RECIPES)
    if flag == "--data":
        from edgebench.host.data import DATASETS
        return list(DATASETS)
    if flag == "--accelerators":
        from edgebench.device.units import COMPUTE_UNITS
        return list(COMPUTE_UNITS)
    if flag == "--runtime":
        from edgebench.device.runtimes import RUNTIMES
        return ["auto", *RUNTIMES]
    if flag == "--robustness":
        from edgebench.host.data.corruptions import CORRUPTIONS
        return list(CORRUPTIONS)
    if flag == "--profile":
        from edgebench.host.profiles import PROFILES
        return list(PROFILES)
    if flag == "--target":
        from edgebench.host.targets import TARGETS
        return list(TARGETS)
    if flag == "--power":
        from edgebench.device.power import POWER_SOURCES
        return ["none", "auto", *POWER_SOURCES]
    raise AssertionError(flag)


def test_every_command_with_a_registry_option_is_covered():
    commands = {c for c, _, _ in OPTIONS}
    assert {"train", "evaluate", "convert", "quantize", "bundle", "deploy", "run",
            "doctor"} <= commands
    assert {f for _, f, _ in OPTIONS} == set(REGISTRY_OPTIONS)


@pytest.mark.parametrize("command,flag,action", OPTIONS,
                         ids=[f"{c} {f}" for c, f, _ in OPTIONS])
def test_help_lists_the_registry(command, flag, action):
    assert isinstance(action, RegistryAction), f"bench-host {command} {flag} is not a registry option"
    assert "'help' lists" in action.help
    code, out, err = run_cli(command, flag, "help")
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    for name in names_of(flag):
        line = next((l for l in lines if l.split() and l.split()[0] == name), None)
        assert line is not None, (name, out)
        assert len(line.split()) > 1, f"{name}: no description in {line!r}"


def test_power_is_checked_on_the_host():
    """Before any device is contacted, and `help` never reaches the pipeline as a source name."""
    code, out, err = run_cli("run", "--power", "pmic")
    assert code == 2 and "unknown --power 'pmic'" in err and "ina3221" in err


def test_runtime_is_checked_on_the_host():
    code, out, err = run_cli("deploy", "--runtime", "tflite")
    assert code == 2 and "unknown runtime 'tflite'" in err and "litert" in err
