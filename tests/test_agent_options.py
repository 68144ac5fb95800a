"""AgentOptions: built once from the command line (or a profile), checked as the agent checks,
and handed to the agent unchanged as its argv."""
from __future__ import annotations

import pytest

from edgebench.device.agent.cli import parse_args
from edgebench.device.options import AgentOptions
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
