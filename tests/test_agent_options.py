"""AgentOptions: built once from the command line (or a profile), checked as the agent checks,
and handed to the agent unchanged as its argv."""
from __future__ import annotations

import argparse

import pytest

from edgebench.device.agent.cli import build_parser as agent_parser, parse_args
from edgebench.device.agent.guide import GUIDE
from edgebench.device.options import RUNNING, AgentOptions, agent_command, option_fields
from edgebench.host.cli import build_parser
from edgebench.host.commands.agent_options import agent_options_from
from edgebench.host.errors import UserError
from edgebench.host.profiles import PROFILES


def parsed(*argv):
    return build_parser().parse_args(list(argv))


def test_deploy_flags_reach_the_agent_as_given():
    args = parsed("deploy", "--bundle", "b", "--threads", "1,4", "--accelerators", "cpu",
                  "--delegate", "libx.so:a=b", "--rounds", "2", "--warmup", "1", "--only",
                  "m.int8", "--runtime", "litert", "--xnnpack", "off", "--min-runs", "7",
                  "--robustness-images", "5", "--cooldown-temp", "60")
    options = agent_options_from(args, models=args.only)
    agent = parse_args(["--bundle", "b", "--out", "o", *options.to_argv()])
    assert agent.threads == [1, 4] and agent.rounds == 2 and agent.warmup == 1
    assert agent.models == "m.int8" and agent.runtime == "litert" and agent.xnnpack == "off"
    assert agent.min_runs == 7 and agent.robustness_images == 5 and agent.cooldown_temp == 60.0
    assert [u["spec"] for u in agent.units] == ["cpu", "delegate:libx.so:a=b"]


def test_run_passes_its_agent_flags_and_keeps_its_models_for_training():
    args = parsed("run", "--models", "vgg16", "--threads", "2", "--rounds", "3")
    options = agent_options_from(args, models=None)
    assert options.models is None and options.threads == "2" and options.rounds == 3
    merged = options.over(PROFILES["quick"].agent_options())
    assert merged.threads == "2" and merged.warmup == PROFILES["quick"].warmup
    assert parse_args(["--bundle", "b", "--out", "o", *merged.to_argv()]).threads == [2]


@pytest.mark.parametrize("flags,words", [
    (("--threads", "1,two"), "--threads"), (("--rounds", "0"), "--rounds"),
    (("--accelerators", "cpu", "--delegate", ":x=1"), "--delegate needs a library"),
    (("--warmup", "-1"), "--warmup >= 0"),
])
def test_bad_values_are_refused_on_the_host_in_the_agents_words(flags, words):
    with pytest.raises(UserError) as err:
        agent_options_from(parsed("deploy", "--bundle", "b", *flags))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_nothing_given_is_the_agents_defaults():
    assert AgentOptions().to_argv() == []
    agent = parse_args(["--bundle", "b", "--out", "o"])
    assert agent.threads == [1] and agent.rounds == 1 and agent.warmup == 10


# Every option given, none at the agent's default: what to_argv writes must parse back to it.
FULL = AgentOptions(threads="1,4", accelerators="cpu,gpu", delegate=("libx.so:a=b", "liby.so"),
                    rounds=2, warmup=1, min_runs=7, min_seconds=0.5, max_seconds=9.0,
                    models="m.int8", runtime="litert", xnnpack="off", robustness_images=5,
                    cooldown_temp=60.0, cooldown_timeout=30.0, power="rapl", power_hz=5.0,
                    power_idle_seconds=1.0, soak=2.0, soak_interval=1.5, fps="15,30",
                    scenario_seconds=3.0, streams=2, profile_ops=50)
HOST_FLAG = {"--models": "--only"}  # deploy's name for the agent's --models


def flags_of(parser) -> dict:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def command_parser(name: str):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_full_gives_every_declared_option():
    assert [name for name, _, _ in option_fields() if getattr(FULL, name) in (None, ())] == []


def test_the_agent_parses_back_what_to_argv_wrote():
    namespace = agent_parser().parse_args(["--bundle", "b", "--out", "o", *FULL.to_argv()])
    assert AgentOptions.from_namespace(namespace) == FULL


def test_the_hosts_deploy_parses_back_what_to_argv_wrote():
    argv = [HOST_FLAG.get(word, word) for word in FULL.to_argv()]
    args = parsed("deploy", "--bundle", "b", *argv)
    assert agent_options_from(args, models=args.only) == FULL


def test_each_option_is_one_declaration_on_the_agent_and_the_host():
    """Same flag, type, choices and metavar on both; the agent's default there, none on the host
    (it sends only what was given); the same default text, said by each."""
    agent, deploy = flags_of(agent_parser()), flags_of(command_parser("deploy"))
    run = flags_of(command_parser("run"))
    for name, flag, declared in option_fields():
        mine, host = agent[flag], deploy[HOST_FLAG.get(flag, flag)]
        assert mine.dest == name and host.default is None
        assert mine.default == ([] if declared.repeat else declared.default)
        assert (mine.type, mine.choices, mine.metavar) == (host.type, host.choices, host.metavar)
        text = declared.default_text()
        assert mine.help == declared.help_with_default(), flag
        assert host.help == declared.help_with_default("agent default"), flag
        if text:
            assert mine.help.endswith("(default %s)" % text)
            assert host.help.endswith("(agent default %s)" % text)
        # run measures as its profile says and trains its own --models: it takes the rest
        assert (flag in run) == (declared.group != RUNNING) or flag == "--models", flag


def test_the_guides_usage_lists_every_option():
    usage = " ".join(GUIDE.split())
    assert "python3 agent.pyz --bundle DIR --out DIR" in usage
    for _, flag, declared in option_fields():
        assert "[%s %s]" % (flag, declared.placeholder()) in usage


def test_agent_command_is_the_archive_the_folders_then_the_options():
    command = agent_command("python3", "b/agent.pyz", "b", "o", FULL, extra=("--run-id", "r"))
    assert command[:6] == ["python3", "b/agent.pyz", "--bundle", "b", "--out", "o"]
    assert command[6:] == FULL.to_argv() + ["--run-id", "r"]
    bare = ["python3", "a", "--bundle", "b", "--out", "o"]
    assert agent_command("python3", "a", "b", "o") == bare
