"""Deploy faults, each ending with a clear message and nothing measured lost: the agent killed on
the device mid-run (rows kept, resume), the device lock held or left stale, a fleet with one
device down, plus the `deploy` and `doctor` commands as a user runs them."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import replace

import pytest

from agent_helpers import FAST, run_folder
from cli_runner import run_cli
from sshd import SYSTEM_PYTHON
from test_deploy import RECIPES, bundle, read_csv, ssh_options, ssh_spec  # noqa: F401
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.deploy import deploy
from edgebench.host.targets import open_target
from edgebench.host.targets.lock import DeviceLock

pytestmark = pytest.mark.ssh
SLOW = replace(FAST, min_seconds=1.5)


def fast_cli_args() -> list:
    return FAST.to_argv()


def test_agent_killed_mid_run_keeps_rows_and_resumes(bundle, ssh_env, sshd, known_hosts,
                                                      remote_dir, tmp_path):
    spec = ssh_spec(ssh_env, sshd, remote_dir)
    run_dir = ssh_env.home / remote_dir / "runs" / f"killed-{load_bundle(bundle).content_id}"
    killed = []

    def killer():
        deadline = time.monotonic() + 120
        csv_path = run_dir / "out" / "results.csv"
        while time.monotonic() < deadline:
            if csv_path.exists() and len(csv_path.read_text().splitlines()) >= 2:
                pid = int((run_dir / "agent.pid").read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)
    t = threading.Thread(target=killer)
    t.start()
    first = deploy(bundle, [spec], tmp_path / "results", SLOW,
                   options=ssh_options(ssh_env, known_hosts), progress=False, run_id="killed")[0]
    t.join()
    assert killed, "the agent finished before it could be killed"
    assert not first.ok and "killed by a signal" in first.error and "resume" in first.error
    assert first.rows == 1          # the measured row came home
    _, rows = read_csv(first.results / "results.csv")
    done_model = rows[0]["model"]

    events = []
    second = deploy(bundle, [spec], tmp_path / "results", SLOW,
                    options=ssh_options(ssh_env, known_hosts), progress=False,
                    on_event=lambda n, ev: events.append(ev))[0]
    assert second.ok, second.error
    assert second.rows == len(RECIPES) and second.transfer.bytes_sent == 0
    assert any(ev["event"] == "skip" and ev["model"] == done_model for ev in events)
    _, rows2 = read_csv(second.results / "results.csv")
    assert rows2[0] == rows[0]      # the first run's row is kept as measured, not redone


def test_lock_held_by_another_run_is_refused_then_stale_lock_recovered(
        bundle, ssh_env, sshd, known_hosts, remote_dir, tmp_path):
    spec = ssh_spec(ssh_env, sshd, remote_dir)
    opts = ssh_options(ssh_env, known_hosts)
    with open_target(spec, opts) as other:
        root = other.expand(remote_dir)
        with DeviceLock(other, ssh_env.python, root, "other-run"):
            busy = deploy(bundle, [spec], tmp_path / "r", FAST, options=opts, progress=False)[0]
            assert not busy.ok
            assert "device busy" in busy.error and "run other-run by" in busy.error
            assert busy.attempts == 1          # busy is not a link error: no retry
            # The holder dies without releasing (kill -9 of the device-side process).
            holder = json.loads((ssh_env.home / remote_dir / "lock").read_text())
            os.kill(holder["device_pid"], signal.SIGKILL)
            time.sleep(0.2)
    out = deploy(bundle, [spec], tmp_path / "r", FAST, options=opts, progress=False)[0]
    assert out.ok, out.error
    assert out.stale_lock and out.stale_lock["run_id"] == "other-run"
    assert (ssh_env.home / remote_dir / "lock").read_text() == ""   # released cleanly


def test_fleet_of_three_with_one_down(bundle, ssh_env, sshd_factory, tmp_path):
    up = [sshd_factory(), sshd_factory()]
    down = sshd_factory()
    down.stop()
    kh = tmp_path / "known_hosts"
    kh.write_text("".join(s.known_hosts_line() for s in up + [down]))
    inv = tmp_path / "fleet.toml"
    lines = [f'[defaults]\nuser = "{ssh_env.user}"\nhost = "127.0.0.1"\n'
             f'python = "{ssh_env.python}"\n']
    for name, server in zip(("pi-a", "pi-b", "pi-down"), up + [down]):
        lines.append(f'[devices.{name}]\nport = {server.port}\n'
                     f'remote_dir = "ebtest-fleet-{server.port}"\n')
    inv.write_text("\n".join(lines))
    t0 = time.monotonic()
    code, out, err = run_cli("deploy", "--bundle", bundle, "--inventory", inv, "--known-hosts", kh,
                             "-i", ssh_env.client_key, "--results", tmp_path / "results",
                             "--connect-timeout", "3", "--no-progress", "--retries", "1",
                             "--backoff", "0.5", *fast_cli_args())
    assert code == 1, err
    assert "2 of 3 targets finished, 1 failed" in out
    assert "FAIL  pi-down" in out and "cannot connect" in out and "gave up after 2" in out
    for name in ("pi-a", "pi-b"):
        _, rows = read_csv(run_folder(tmp_path / "results") / name / "results.csv")
        assert len(rows) == len(RECIPES)
    assert not (run_folder(tmp_path / "results") / "pi-down").exists()
    for s in up:
        import shutil
        shutil.rmtree(ssh_env.home / f"ebtest-fleet-{s.port}", ignore_errors=True)
    assert time.monotonic() - t0 < 120


def test_deploy_command_shows_progress_and_pulls_results(bundle, ssh_env, sshd, known_hosts,
                                                         remote_dir, tmp_path):
    code, out, err = run_cli("deploy", "--bundle", bundle, "--target", sshd.target,
                             "--known-hosts", known_hosts, "-i", ssh_env.client_key,
                             "--remote-python", ssh_env.python, "--remote-dir", remote_dir,
                             "--results", tmp_path / "res", *fast_cli_args())
    assert code == 0, err
    assert "1 of 1 targets finished" in out
    assert "B/s" in err and "model" in err      # the byte bar, then the agent's model bar
    target_dir = run_folder(tmp_path / "res") / f"ebtest@127.0.0.1_{sshd.port}"
    assert (target_dir / "results.csv").exists()


def test_deploy_command_bad_input_is_one_line(tmp_path, ssh_env, sshd):
    code, out, err = run_cli("deploy", "--bundle", tmp_path, "--target", "local")
    assert code == 2 and "is not a bundle" in err and "Traceback" not in err
    code, out, err = run_cli("deploy", "--bundle", tmp_path, "--target", "pi@host:notaport")
    assert code == 2 and "bad --target" in err
    kh = tmp_path / "empty_known_hosts"
    code, out, err = run_cli("doctor", "--target", sshd.target, "--known-hosts", kh,
                             "-i", ssh_env.client_key)
    assert code == 1 and "--accept-new-host-key" in out


def test_doctor_command_reports_checks_and_sensors(ssh_env, sshd, known_hosts):
    code, out, err = run_cli("doctor", "--target", sshd.target, "--known-hosts", known_hosts,
                             "-i", ssh_env.client_key, "--remote-python", ssh_env.python)
    assert code == 0, out + err
    for row in ("python", "numpy", "interpreter", "disk", "temperature", "throttling",
                "power rails"):
        assert row in out
    assert "ai_edge_litert" in out and "FAIL" not in out
    code, out, err = run_cli("doctor", "--target", sshd.target, "--known-hosts", known_hosts,
                             "-i", ssh_env.client_key, "--remote-python", SYSTEM_PYTHON)
    assert code == 1 and "pip install numpy" in out and "not ready" in err


def test_link_dropped_mid_run_is_retried_and_resumes(bundle, ssh_env, sshd, remote_dir, tmp_path,
                                                     tcp_proxy):
    proxy = tcp_proxy(sshd.port)
    spec = ssh_spec(ssh_env, sshd, remote_dir)
    spec.port = proxy.port
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} "))
    csv_path = (ssh_env.home / remote_dir / "runs" / f"cut-{load_bundle(bundle).content_id}"
                / "out" / "results.csv")

    def cutter():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if csv_path.exists() and len(csv_path.read_text().splitlines()) >= 2:
                proxy.cut_all()
                return
            time.sleep(0.05)
    t = threading.Thread(target=cutter)
    t.start()
    events = []
    out = deploy(bundle, [spec], tmp_path / "results", SLOW, options=ssh_options(ssh_env, kh),
                 retries=1, backoff_s=0.2, progress=False, run_id="cut",
                 on_event=lambda n, ev: events.append(ev))[0]
    t.join()
    assert proxy.cuts == 1
    assert out.ok, out.error
    assert out.attempts == 2 and out.rows == len(RECIPES)
    assert any(ev["event"] == "skip" for ev in events)     # the row measured before the cut
    _, rows = read_csv(out.results / "results.csv")
    assert sorted(r["model"] for r in rows) == sorted(f"tinycnn.{r}" for r in RECIPES)
