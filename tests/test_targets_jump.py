"""OpenSSH jump hosts on loopback: bastions are real sshd servers that only forward (no commands,
no sftp). ProxyJump with one and two hops (-J and ~/.ssh/config), ProxyCommand, and every hop's
host key checked like the device's."""
from __future__ import annotations

import pytest

from cli_runner import run_cli
from sshd import keygen
from edgebench.host.errors import UserError
from edgebench.host.targets import ConnectOptions, LinkDropped, open_target

pytestmark = pytest.mark.ssh


@pytest.fixture
def bastion(sshd_factory):
    return sshd_factory(jump_only=True)


def options(env, kh, **kw) -> ConnectOptions:
    # 20 s as a loaded CI machine needs: a clean-clone run of the suite once took over 5 s to open
    # a channel through two hops. No test here waits for the timeout to expire.
    return ConnectOptions(known_hosts=str(kh), identity_files=[str(env.client_key)],
                          allow_agent=False, look_for_keys=False, connect_timeout=20, **kw)


def hop(env, server) -> str:
    return f"{env.user}@127.0.0.1:{server.port}"


def test_bastion_really_only_forwards(ssh_env, bastion, tmp_path):
    kh = tmp_path / "kh"
    kh.write_text(bastion.known_hosts_line())
    with open_target(bastion.target, options(ssh_env, kh)) as t:
        assert not t.run(["echo", "hello"]).ok      # ForceCommand /bin/false


def test_unknown_jump_host_key_is_refused_then_accepted_per_hop(ssh_env, sshd, bastion,
                                                               tmp_path, tcp_proxy, capsys):
    proxy = tcp_proxy(bastion.port)             # counts what really goes through the bastion
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line())      # the device is known, the bastion is not
    jump = f"{ssh_env.user}@127.0.0.1:{proxy.port}"
    with pytest.raises(UserError, match=rf"host key for jump host \[127.0.0.1\]:{proxy.port} is "
                                        r"not known .*SHA256:.*--accept-new-host-key"):
        open_target(sshd.target, options(ssh_env, kh, proxy_jump=jump))
    assert kh.read_text() == sshd.known_hosts_line()
    before = proxy.bytes_up
    with open_target(sshd.target, options(ssh_env, kh, proxy_jump=jump,
                                          accept_new_host_key=True)) as t:
        assert t.run(["id", "-un"]).stdout == ssh_env.user
        assert len(t.recorded) == 1
        assert t.recorded[0].startswith(f"recorded the host key of jump host "
                                        f"[127.0.0.1]:{proxy.port} (ED25519 SHA256:")
    assert "recorded the host key of jump host" in capsys.readouterr().err
    assert proxy.bytes_up - before > 3000 and proxy.connections == 2   # it went through there
    with open_target(sshd.target, options(ssh_env, kh, proxy_jump=jump)) as t:   # now verified
        assert t.run(["true"]).ok and t.recorded == []


def test_changed_jump_host_key_is_refused(ssh_env, sshd, bastion, tmp_path):
    keygen(tmp_path / "other")
    kind, b64 = (tmp_path / "other.pub").read_text().split()[:2]
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line() + f"[127.0.0.1]:{bastion.port} {kind} {b64}\n")
    with pytest.raises(UserError, match="jump host: REMOTE HOST IDENTIFICATION HAS CHANGED"):
        open_target(sshd.target, options(ssh_env, kh, proxy_jump=hop(ssh_env, bastion),
                                          accept_new_host_key=True))


def test_two_hops_from_ssh_config_proxyjump(ssh_env, sshd, sshd_factory, tmp_path):
    b1, b2 = sshd_factory(jump_only=True), sshd_factory(jump_only=True)
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line() + b1.known_hosts_line() + b2.known_hosts_line())
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host gw1\n  HostName 127.0.0.1\n  Port {b1.port}\n  User {ssh_env.user}\n"
                   f"Host gw2\n  HostName 127.0.0.1\n  Port {b2.port}\n"
                   f"Host lab-pi\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {ssh_env.user}\n"
                   f"  ProxyJump gw1,{ssh_env.user}@gw2\n")
    with open_target("lab-pi", options(ssh_env, kh, ssh_config=str(cfg))) as t:
        assert [h.port for h in t.route.jumps] == [b1.port, b2.port]
        assert len(t._clients) == 3
        assert t.run(["id", "-un"]).stdout == ssh_env.user
    # -J on the command line beats the config (here: one hop only)
    with open_target("lab-pi", options(ssh_env, kh, ssh_config=str(cfg),
                                       proxy_jump=hop(ssh_env, b2))) as t:
        assert [h.port for h in t.route.jumps] == [b2.port] and t.run(["true"]).ok


def test_proxycommand_from_ssh_config(ssh_env, sshd, bastion, tmp_path):
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line() + bastion.known_hosts_line())
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host lab-pi\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {ssh_env.user}\n"
                   f"  ProxyCommand ssh -q -i {ssh_env.client_key} -o BatchMode=yes "
                   f"-o UserKnownHostsFile={kh} -p {bastion.port} -W %h:%p "
                   f"{ssh_env.user}@127.0.0.1\n")
    with open_target("lab-pi", options(ssh_env, kh, ssh_config=str(cfg))) as t:
        assert t.route.proxy_command and t.run(["id", "-un"]).stdout == ssh_env.user


def test_jump_host_that_forbids_forwarding_or_is_down(ssh_env, sshd, sshd_factory, tmp_path):
    plain = sshd_factory()                    # a normal server: AllowTcpForwarding no
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line() + plain.known_hosts_line())
    with pytest.raises(UserError, match=rf"jump host .*:{plain.port} refuses to forward to "
                                        rf"127.0.0.1:{sshd.port}"):
        open_target(sshd.target, options(ssh_env, kh, proxy_jump=hop(ssh_env, plain)))
    plain.stop()
    with pytest.raises(LinkDropped, match=r"jump host .* cannot connect: connection refused"):
        open_target(sshd.target, options(ssh_env, kh, proxy_jump=hop(ssh_env, plain)))


def test_doctor_through_a_jump_host_from_the_command_line(ssh_env, sshd, bastion, tmp_path):
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line())
    code, out, err = run_cli("doctor", "--target", sshd.target, "-J", hop(ssh_env, bastion),
                             "--known-hosts", kh, "-i", ssh_env.client_key,
                             "--remote-python", ssh_env.python, "--accept-new-host-key")
    assert code == 0, out + err
    assert f"recorded the host key of jump host [127.0.0.1]:{bastion.port}" in err
    code, out, err = run_cli("doctor", "--target", sshd.target, "-J", "bad host!",
                             "--known-hosts", kh)
    assert code == 2 and "bad jump host" in err and "Traceback" not in err
