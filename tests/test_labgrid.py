"""Board farms through a real labgrid 26.0.1 (tests/labgrid_farm.py): a coordinator and an
exporter on 127.0.0.1 whose two places' NetworkServices are two loopback sshds (two users, so
two "boards" with their own ~/.edgebench), one place with a power switch we control."""
from __future__ import annotations

import csv
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from sshd import ensure_test_user, make_server
from agent_helpers import FAST, run_folder
from cli_runner import BENCH_HOST, run_cli
from labgrid_farm import Farm, Relay, free_port, start_farm
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.deploy import deploy
from edgebench.host.deploy_summary import summary
from edgebench.host.targets import ConnectOptions, parse_target
from edgebench.host.targets.labgrid_fleet import deploy_fleet
from edgebench.host.targets.labgrid_places import LabgridOptions

pytestmark = pytest.mark.ssh
SECOND_USER = "ebtest2"
RECIPES = ("fp32", "int8")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from tflite_factory import make_bundle
    return make_bundle(tmp_path_factory.mktemp("lg-bundle") / "bundle", recipes=RECIPES)


def _second_user() -> pwd.struct_passwd:
    return ensure_test_user(SECOND_USER)


@dataclass
class Lab:
    farm: Farm
    relay: Relay
    known_hosts: Path
    homes: dict          # place -> the board's home folder
    env: object          # SSHEnv


@pytest.fixture(scope="module")
def lab(ssh_env, tmp_path_factory):
    home_b = Path(_second_user().pw_dir)
    board_a = make_server(ssh_env).start()
    board_b = make_server(ssh_env, extra_config=f"AllowUsers {SECOND_USER}").start()
    relay = Relay()
    farm = start_farm(tmp_path_factory.mktemp("farm"))
    try:
        farm.start_exporter("bench", {
            "pi-a": {"NetworkService": {"address": "127.0.0.1", "username": ssh_env.user,
                                        "port": board_a.port},
                     "NetworkPowerPort": {"model": "rest", "host": relay.url(), "index": 0}},
            "pi-b": {"NetworkService": {"address": "127.0.0.1", "username": SECOND_USER,
                                        "port": board_b.port}},
        })
        farm.add_place("pi-a", "bench/pi-a/*", {"board": "pi5", "lab": "desk"})
        farm.add_place("pi-b", "bench/pi-b/*", {"board": "pi5"})
        kh = tmp_path_factory.mktemp("lg-kh") / "known_hosts"
        kh.write_text(board_a.known_hosts_line() + board_b.known_hosts_line())
        yield Lab(farm, relay, kh, {"pi-a": ssh_env.home, "pi-b": home_b}, ssh_env)
    finally:
        farm.stop()
        relay.stop()
        board_a.stop()
        board_b.stop()


@pytest.fixture
def rdir(lab):
    rel = f"ebtest-lg-{uuid.uuid4().hex[:8]}"
    yield rel
    for home in lab.homes.values():
        shutil.rmtree(home / rel, ignore_errors=True)


@pytest.fixture
def records(tmp_path, monkeypatch):
    """Acquisition records in a test folder (the CLI reads XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "edgebench" / "labgrid"


def options(lab, **kw) -> LabgridOptions:
    return LabgridOptions(coordinator=lab.farm.address, client_program=lab.farm.client, **kw)


def ssh_options(lab) -> ConnectOptions:
    return ConnectOptions(known_hosts=str(lab.known_hosts),
                          identity_files=[str(lab.env.client_key)], allow_agent=False,
                          look_for_keys=False, connect_timeout=5)


def fleet(lab, bundle, names, results, rdir, agent=FAST, **kw):
    return deploy_fleet(deploy, bundle, [parse_target(f"labgrid:{n}") for n in names], results,
                        agent, lab=options(lab, **kw), options=ssh_options(lab),
                        remote_python=lab.env.python, remote_dir=rdir, progress=False)


def cli_args(lab, bundle, results, rdir) -> list:
    return ["--bundle", bundle, "--results", results, "--coordinator", lab.farm.address,
            "--labgrid-client", lab.farm.client, "-i", lab.env.client_key, "--known-hosts",
            lab.known_hosts, "--remote-python", lab.env.python, "--remote-dir", rdir,
            "--no-progress", *FAST.to_argv()]


def rows_of(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_places_by_tag_deploy_concurrently_and_the_report_groups_them(
        lab, bundle, rdir, records, tmp_path):
    results = tmp_path / "results"
    code, out, err = run_cli("deploy", *cli_args(lab, bundle, results, rdir),
                             "--labgrid-tags", "board=pi5")
    assert code == 0, out + err
    assert "2 of 2 targets finished" in out and "released place pi-a" in out
    run = run_folder(results)
    for place, tags in (("pi-a", "board=pi5,lab=desk"), ("pi-b", "board=pi5")):
        assert len(rows_of(run / place / "results.csv")) == len(RECIPES)
        # each place's rows were measured on its own board, in its own user's folder
        assert any((lab.homes[place] / rdir / "runs").iterdir())
        assert lab.farm.holder(place) is None
    assert not list(records.glob("*.json")), "a released place left its record behind"

    code, out, err = run_cli("report", run)
    assert code == 0, out + err
    summary_rows = rows_of(next(run.rglob("summary.csv")))
    places = {(r["device"], r["place"], r["place_tags"]) for r in summary_rows}
    assert places == {("pi-a", "pi-a", "board=pi5,lab=desk"), ("pi-b", "pi-b", "board=pi5")}
    report_md = next(run.rglob("report.md")).read_text()
    assert "pi-a (labgrid place pi-a, board=pi5,lab=desk)" in report_md


def test_power_cycle_switches_the_relay_and_a_place_without_power_fails_alone(
        lab, bundle, rdir, records, tmp_path):
    lab.relay.switches.clear()
    a, b = fleet(lab, bundle, ["pi-a", "pi-b"], tmp_path / "results", rdir, power_cycle=True,
                 power_delay_s=0.2, boot_timeout_s=30)
    assert a.ok, summary([a, b])
    assert lab.relay.switches == [("/relay/0/value", "0"), ("/relay/0/value", "1")]
    assert any("power-cycled place pi-a" in n for n in a.notes)
    assert any("answered SSH" in n for n in a.notes)
    assert not b.ok and "place pi-b has no power resource" in b.error
    assert a.rows == len(RECIPES)
    assert lab.farm.holder("pi-a") is None and lab.farm.holder("pi-b") is None


def test_a_place_held_by_another_owner_is_named_or_waited_for(
        lab, bundle, rdir, records, tmp_path):
    lab.farm.lg("acquire", place="pi-b", user="alice")
    try:
        busy = fleet(lab, bundle, ["pi-b"], tmp_path / "r1", rdir)[0]
        assert not busy.ok and "place pi-b is acquired by" in busy.error
        assert "/alice" in busy.error and "--wait" in busy.error
        assert lab.farm.holder("pi-b").endswith("/alice")   # never taken from its owner

        queued = []

        def release_once_we_queue():   # alice lets go once our reservation is waiting for it
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if "state: waiting" in lab.farm.lg("reservations").stdout:
                    queued.append(time.monotonic())
                    time.sleep(2.0)
                    lab.farm.lg("release", place="pi-b", user="alice")
                    return
                time.sleep(0.3)
        alice = threading.Thread(target=release_once_we_queue)
        alice.start()
        waited = fleet(lab, bundle, ["pi-b"], tmp_path / "r2", rdir, wait_s=90)[0]
        alice.join()
        assert queued, "no reservation was queued for the busy place"
        assert waited.ok, waited.error
        assert any("waiting up to 90 s" in n for n in waited.notes)
        assert waited.rows == len(RECIPES)
        assert lab.farm.holder("pi-b") is None
        assert "pi-b" not in lab.farm.lg("reservations").stdout   # our reservation is gone
    finally:
        lab.farm.lg("release", "--kick", place="pi-b", check=False)


def test_coordinator_not_running_is_one_line_naming_it(lab, bundle, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    code, out, err = run_cli("deploy", "--bundle", bundle, "--target", "labgrid:pi-a",
                             "--coordinator", address, "--labgrid-client", lab.farm.client)
    assert code == 2
    assert err.count("\n") == 1 and address in err and "not answering" in err, err


def test_without_labgrid_client_it_says_what_to_install(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = run_cli("deploy", "--bundle", bundle, "--target", "labgrid:pi-a")
    assert code == 2 and err.count("\n") == 1
    assert "labgrid-client is not on PATH" in err and "pip install labgrid==26.0.1" in err


def test_a_place_whose_exporter_is_gone_is_unavailable(lab, bundle, rdir, records, tmp_path):
    lab.farm.start_exporter("gone", {"pi-c": {"NetworkService": {
        "address": "127.0.0.1", "username": "nobody", "port": 1}}})
    lab.farm.add_place("pi-c", "gone/pi-c/*", {"board": "pi3"})
    lab.farm.stop_exporter("gone")
    time.sleep(1.0)
    out = fleet(lab, bundle, ["pi-c"], tmp_path / "results", rdir)[0]
    assert not out.ok and "place pi-c is unavailable" in out.error, out.error
    assert "labgrid-exporter" in out.error


def test_doctor_shows_the_place_its_resources_and_the_device_checks(lab, records):
    code, out, err = run_cli("doctor", "--target", "labgrid:pi-a", "--coordinator",
                             lab.farm.address, "--labgrid-client", lab.farm.client, "-i",
                             lab.env.client_key, "--known-hosts", lab.known_hosts,
                             "--remote-python", lab.env.python)
    assert "labgrid place pi-a on " + lab.farm.address in out, out + err
    assert "NetworkService" in out and "NetworkPowerPort" in out and "board=pi5" in out
    assert "numpy" in out   # the device checks ran over the place's SSH
    assert code == 0, out + err
    assert lab.farm.holder("pi-a") is None


def _start_cli_deploy(lab, bundle, results, rdir, env) -> subprocess.Popen:
    argv = [str(BENCH_HOST), "deploy", *map(str, cli_args(lab, bundle, results, rdir)),
            "--target", "labgrid:pi-a", "--min-seconds", "1.5", "--lease-timeout", "5"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def _wait_for_first_row(lab, rdir, proc, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list((lab.homes["pi-a"] / rdir).glob("runs/*/out/results.csv"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the agent measured no row in time")


def test_a_run_killed_mid_deploy_is_released_by_the_next_run(
        lab, bundle, rdir, records, tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(records.parents[1]))
    proc = _start_cli_deploy(lab, bundle, tmp_path / "results", rdir, env)
    try:
        _wait_for_first_row(lab, rdir, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert lab.farm.holder("pi-a") is not None   # nothing could release it
    again = _start_cli_deploy(lab, bundle, tmp_path / "results", rdir, env)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    assert f"left acquired by an edgebench run that died (pid {proc.pid}" in out + err
    rows = rows_of(run_folder(tmp_path / "results") / "pi-a" / "results.csv")
    assert len(rows) == len(RECIPES)
    # the row measured before the kill was kept on the board, not measured a second time
    device_csv = next((lab.homes["pi-a"] / rdir).glob("runs/*/out/results.csv"))
    assert len(rows_of(device_csv)) == len(RECIPES)
    assert lab.farm.holder("pi-a") is None


def test_sigterm_mid_deploy_releases_the_place(lab, bundle, rdir, records, tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(records.parents[1]))
    proc = _start_cli_deploy(lab, bundle, tmp_path / "results", rdir, env)
    try:
        _wait_for_first_row(lab, rdir, proc)
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while lab.farm.holder("pi-a") is not None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert lab.farm.holder("pi-a") is None
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()


@pytest.mark.parametrize("argv,match", [
    (["--target", "labgrid:"], "expected labgrid:PLACE"),
    (["--labgrid-tags", "board"], "expected KEY=VALUE"),
    (["--target", "labgrid:pi-a", "--wait", "-3"], "--wait must be >= 0"),
])
def test_bad_labgrid_arguments_are_one_line(bundle, argv, match):
    code, out, err = run_cli("deploy", "--bundle", bundle, *argv)
    assert code == 2 and err.count("\n") == 1 and match in err, err
