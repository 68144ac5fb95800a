"""The terminal shows edgebench's own lines only: a deploy over a link that drops (paramiko logs
each reset at ERROR level, "Socket exception: Connection reset by peer (104)") prints none of
paramiko's lines on stderr; they go to RESULTS/<run-id>/host.log, and --verbose shows them."""
from __future__ import annotations

import pytest
from cli_runner import run_bench_host
from agent_helpers import run_folder

from test_deploy import bundle  # noqa: F401  (fixture)
from test_deploy_faults import fast_cli_args
from edgebench.host.bundle_reader import load_bundle

pytestmark = pytest.mark.ssh


def deploy_through_a_reset(bundle, ssh_env, sshd, remote_dir, tmp_path,  # noqa: F811
                           tcp_proxy, *extra):
    size = load_bundle(bundle).size
    proxy = tcp_proxy(sshd.port, reset_after_up=int(0.5 * size), fault_connections=1)
    kh = tmp_path / "kh"   # the proxy's port is another known_hosts name
    kh.write_text(sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} "))
    target = sshd.target.replace(f":{sshd.port}", f":{proxy.port}")
    res = run_bench_host("deploy", "--bundle", bundle, "--target", target, "--known-hosts", kh,
                         "-i", ssh_env.client_key, "--remote-python", ssh_env.python,
                         "--remote-dir", remote_dir, "--results", tmp_path / "res",
                         "--no-progress", "--retries", "2", "--backoff", "0.2",
                         # no results database: its one line of news is edgebench's own, but
                         # these tests count every line on stderr
                         "--db", "none", *fast_cli_args(), *extra, timeout=300)
    assert proxy.cuts == 1
    return res, run_folder(tmp_path / "res") / "host.log"


def test_a_dropped_link_prints_only_edgebench_lines(bundle, ssh_env, sshd, remote_dir,  # noqa: F811
                                                    tmp_path, tcp_proxy):
    res, host_log = deploy_through_a_reset(bundle, ssh_env, sshd, remote_dir, tmp_path,
                                           tcp_proxy)
    assert res.returncode == 0, res.stderr
    assert "1 dropped link resumed" in res.stdout
    # With progress bars off, edgebench itself has nothing to say on stderr: any line there
    # would be a library's (paramiko's logging, a native log) or a traceback.
    assert res.stderr.strip() == "", res.stderr
    log = host_log.read_text()
    assert "paramiko.transport" in log
    # paramiko logs the reset itself only when its reader thread meets it first (not when an SFTP
    # write does); edgebench's own line for the drop and its retry is always there
    drops = [line for line in log.splitlines()
             if " WARNING edgebench.deploy " in line and "link dropped while" in line]
    assert len(drops) == 1 and "; retry 1 in " in drops[0], log[-2000:]


def test_verbose_shows_the_library_lines(bundle, ssh_env, sshd, remote_dir,  # noqa: F811
                                         tmp_path, tcp_proxy):
    res, host_log = deploy_through_a_reset(bundle, ssh_env, sshd, remote_dir, tmp_path,
                                           tcp_proxy, "--verbose")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines and all(line.startswith("[paramiko") or line.startswith("[edgebench.")
                         for line in lines), res.stderr
    assert "[paramiko.transport]" in res.stderr and host_log.is_file()
