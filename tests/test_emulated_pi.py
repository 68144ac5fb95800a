"""The real ARM path, end to end, on virtual Raspberry Pis: arm64 Debian under qemu-user with its
own OpenSSH, each alone in a network namespace (edgebench.host.emulate).

bookworm (Python 3.11, LiteRT from the arm64 wheel) and bullseye (Python 3.9, glibc 2.31,
tflite-runtime 2.13.0) get `bench-host doctor` and `bench-host deploy` with a tiny model in every
recipe; their rows must say aarch64, the runtime version of the arm64 wheel, emulated, and the
accuracy the host measured for the same models. Faults: the device powered off mid-run (rows kept
on its disk, resume after restart), and a rebuilt device answering with a new host key."""
from __future__ import annotations

import csv
import ipaddress
import json
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent_helpers import by_model, run_agent, run_folder
from cli_runner import run_cli
from emulated_pi import *  # noqa: F401,F403
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.deploy import deploy
from edgebench.host.emulate import hostcheck
from edgebench.host.errors import UserError

pytestmark = pytest.mark.ssh
RECIPES = ("fp32", "dynamic", "fp16", "int8", "int16x8")
ACCURACY_COLUMNS = ("n_test", "accuracy", "sensitivity", "specificity", "tn", "fp", "fn", "tp",
                    "agreement")


def read_rows(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def full_bundle(tmp_path_factory) -> Path:
    from tflite_factory import make_bundle
    return make_bundle(tmp_path_factory.mktemp("emulated-bundle") / "bundle", recipes=RECIPES)


@pytest.fixture(scope="session")
def host_rows(full_bundle, tmp_path_factory) -> dict:
    """The same bundle measured by the agent on this x86 host: the accuracy to match."""
    out = tmp_path_factory.mktemp("host-agent")
    proc = run_agent(full_bundle, out, python=sys.executable)
    assert proc.returncode == 0, proc.stderr
    rows = by_model(read_rows(out / "results.csv"))
    assert all(r["status"] == "ok" and r["machine"] == "x86_64" for r in rows.values())
    return rows


def assert_rows_match_host(rows: list, host: dict, runtime: str, version: str, python: str):
    assert sorted(r["model"] for r in rows) == sorted(host)
    for r in rows:
        assert r["machine"] == "aarch64", r
        assert r["emulated"] == "true", "rows from a qemu device must be marked emulated"
        assert r["runtime"] == runtime and r["runtime_version"] == version
        assert r["python"].startswith(python + ".")
        if r["status"] != "ok":
            continue
        h = host[r["model"]]
        for col in ACCURACY_COLUMNS:
            assert r[col] == h[col], (r["model"], col, r[col], h[col])
        assert abs(float(r["auc"]) - float(h["auc"])) < 1e-3


# --- no device needed: what a machine without the facilities is told -------------------------

def test_missing_binfmt_is_a_message_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(hostcheck, "BINFMT_DIR", tmp_path)
    with pytest.raises(UserError, match="binfmt_misc is not mounted: mount -t binfmt_misc"):
        hostcheck.ensure_binfmt(fix=False)
    (tmp_path / "status").write_text("enabled\n")
    with pytest.raises(UserError, match="apt-get install -y qemu-user-static binfmt-support"):
        hostcheck.ensure_binfmt(fix=False)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\n"
                                           "flags: P\noffset 0\n")
    with pytest.raises(UserError, match="lacks the F flag"):
        hostcheck.ensure_binfmt(fix=False)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: PF\noffset 0\n")
    assert hostcheck.ensure_binfmt(fix=False) == []


def test_not_root_is_a_message(monkeypatch):
    from edgebench.host import emulate

    monkeypatch.setattr(hostcheck.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError, match="needs root .*run it with sudo"):
        emulate.start("bookworm", "never-started")


def test_missing_tools_name_the_packages(monkeypatch):
    monkeypatch.setattr(hostcheck.shutil, "which", lambda tool: None)
    with pytest.raises(UserError, match=r"missing mmdebstrap.*apt-get install -y .*mmdebstrap"):
        hostcheck.require_tools({"mmdebstrap": "mmdebstrap", "ls": "coreutils"})


# --- bookworm: LiteRT from the arm64 wheel ---------------------------------------------------

def test_bookworm_doctor_and_deploy_match_host(pi_bookworm, emulated_images, full_bundle,
                                               host_rows, tmp_path):
    dev, info = pi_bookworm, emulated_images["bookworm"]
    assert info["runtime_version"] == "2.1.0"      # what pip installed from the aarch64 wheel
    code, out, err = run_cli("doctor", "--target", dev.target, "--known-hosts", dev.known_hosts,
                             "-i", dev.client_key)
    assert code == 0, out + err
    assert "aarch64" in out and "ai_edge_litert 2.1.0" in out and "Python 3.11" in out

    inventory = tmp_path / "fleet.ini"
    inventory.write_text("[pis]\n" + dev.inventory_line() + "\n")
    code, out, err = run_cli("deploy", "--bundle", full_bundle, "--inventory", inventory,
                             "--known-hosts", dev.known_hosts, "--results", tmp_path / "res",
                             "--no-progress", *AGENT_OPTIONS.to_argv())
    assert code == 0, out + err
    results = run_folder(tmp_path / "res") / dev.name
    rows = read_rows(results / "results.csv")
    assert all(r["status"] == "ok" for r in rows), [(r["model"], r["error"]) for r in rows]
    assert_rows_match_host(rows, host_rows, "litert", info["runtime_version"], "3.11")
    assert {r["hostname"] for r in rows} == {dev.name}      # its own UTS namespace
    env = json.loads((results / "env.json").read_text())
    assert env["machine"] == "aarch64" and env["emulated"] is True

    from edgebench.host.report import build_report
    report = build_report([results], tmp_path / "report")
    assert "timings not representative" in report.markdown.read_text()


def test_device_powered_off_mid_run_keeps_rows_and_resumes(pi_bookworm, full_bundle,
                                                           tmp_path):
    from edgebench.host import emulate

    dev = pi_bookworm
    spec = dev.spec()
    spec.remote_dir = "fault-run"
    runs = emulate.device_dir(dev.name) / "rootfs" / "home" / dev.user / "fault-run" / "runs"

    def results_on_disk() -> Path:  # the run's id is chosen by the deploy
        found = sorted(runs.glob("*/out/results.csv")) if runs.is_dir() else []
        return found[0] if found else runs / "none"
    slow = replace(AGENT_OPTIONS, min_seconds=1.0)
    cut = []

    def power_cut():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            on_disk = results_on_disk()
            if on_disk.exists() and len(on_disk.read_text().splitlines()) >= 2:
                emulate.stop(dev.name)
                cut.append(time.monotonic())
                return
            time.sleep(0.05)
    t = threading.Thread(target=power_cut)
    t.start()
    first = deploy(full_bundle, [spec], tmp_path / "res", slow,
                   options=device_options(dev, connect_timeout=3), retries=0, progress=False)[0]
    t.join()
    assert cut, "the agent finished before the device could be powered off"
    assert not first.ok and "link dropped" in first.error, first.error
    kept = read_rows(results_on_disk())  # the device's own disk, read from the host
    assert len(kept) == 1 and kept[0]["status"] == "ok"

    again = emulate.start(dev.image, dev.name)
    assert (again.dev_addr, again.known_hosts) == (dev.dev_addr, dev.known_hosts)
    events = []
    # the same options: a deploy resumes only the interrupted run it would measure again
    second = deploy(full_bundle, [spec], tmp_path / "res", slow,
                    options=device_options(dev), progress=False,
                    on_event=lambda name, ev: events.append(ev))[0]
    assert second.ok, second.error
    assert second.rows == len(RECIPES)
    assert second.run_id == first.run_id  # the interrupted run, resumed
    assert second.stale_lock and second.stale_lock["run_id"] == first.run_id
    assert any(ev["event"] == "skip" and ev["model"] == kept[0]["model"] for ev in events)
    rows = read_rows(second.results / "results.csv")
    assert rows[0] == kept[0]            # measured once, before the power cut; not redone


def test_network_namespace_has_no_way_out(pi_bookworm):
    from edgebench.host.emulate import netns

    dev = pi_bookworm
    routes = netns.routes(dev.netns)
    assert not any(r.get("dst") == "default" for r in routes), routes
    main4 = hostcheck.run_quiet(["ip", "-j", "-n", dev.netns, "-4", "route"]).stdout
    link = ipaddress.ip_network(f"{dev.dev_addr}/30", strict=False)
    assert [r["dst"] for r in json.loads(main4)] == [str(link)]     # its own /30, nothing else
    assert ipaddress.ip_address(dev.host_addr) in link
    # A routing lookup only (no packet is sent): an outside address has no route at all.
    probe = hostcheck.run_quiet(["ip", "-n", dev.netns, "route", "get", "198.51.100.1"],
                                check=False)
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()


def test_emulate_command_status_and_bad_input(pi_bookworm):
    code, out, err = run_cli("emulate", "status")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith(pi_bookworm.name))
    assert "running" in line and pi_bookworm.dev_addr in line
    code, out, err = run_cli("emulate", "start", "--image", "help")
    assert code == 0 and "bookworm" in out and "bullseye" in out
    code, out, err = run_cli("emulate", "start", "--image", "jessie")
    assert code == 2 and "unknown emulated image 'jessie'" in err and "Traceback" not in err
    code, out, err = run_cli("emulate", "stop", "--name", "../etc")
    assert code == 2 and "bad device name '../etc'" in err


def test_rebuilt_device_with_new_host_key_is_refused(pi_bookworm, full_bundle, tmp_path):
    from edgebench.host import emulate

    dev = pi_bookworm
    old_known = tmp_path / "known_hosts"
    shutil.copy(dev.known_hosts, old_known)
    emulate.stop(dev.name, purge=True)              # reflash: a new disk, a new host key
    rebuilt = emulate.start(dev.image, dev.name)
    assert rebuilt.dev_addr == dev.dev_addr
    assert Path(rebuilt.known_hosts).read_text() != old_known.read_text()
    code, out, err = run_cli("deploy", "--bundle", full_bundle, "--target", rebuilt.target,
                             "--known-hosts", old_known, "-i", rebuilt.client_key,
                             "--results", tmp_path / "res", "--no-progress",
                             *AGENT_OPTIONS.to_argv())
    assert code == 1
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in out and "ssh-keygen -R" in out
    assert not (emulate.device_dir(dev.name) / "rootfs" / "home" / dev.user / ".edgebench"
                ).exists(), "nothing may reach a device whose host key changed"


# --- bullseye: the fallback runtime on glibc 2.31 / Python 3.9 --------------------------------

def test_bullseye_tflite_runtime_2_13(pi_bullseye, emulated_images, full_bundle, host_rows,
                                      tmp_path):
    dev, info = pi_bullseye, emulated_images["bullseye"]
    assert info["runtime_version"] == "2.13.0" and info["wheels"]["numpy"].startswith("1.")
    code, out, err = run_cli("doctor", "--target", dev.target, "--known-hosts", dev.known_hosts,
                             "-i", dev.client_key)
    assert code == 0, out + err
    assert "tflite_runtime 2.13.0" in out and "Python 3.9" in out
    code, out, err = run_cli("deploy", "--bundle", full_bundle, "--target", dev.target,
                             "--known-hosts", dev.known_hosts, "-i", dev.client_key,
                             "--results", tmp_path / "res", "--no-progress",
                             *AGENT_OPTIONS.to_argv())
    assert code == 0, out + err
    rows = read_rows(next(p for p in run_folder(tmp_path / "res").iterdir() if p.is_dir())
                     / "results.csv")  # the device's folder, beside host.log
    assert_rows_match_host(rows, host_rows, "tflite-runtime", "2.13.0", "3.9")
    # What tflite-runtime 2.13 cannot run (dynamic-range FULLY_CONNECTED v12, as 2.14) is an
    # error row with the reason; every other recipe ran.
    failed = {r["recipe"]: r["error"] for r in rows if r["status"] != "ok"}
    assert list(failed) == ["dynamic"], failed
    assert "FULLY_CONNECTED" in failed["dynamic"]
