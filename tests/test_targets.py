"""The target interface against LocalTarget and a real OpenSSH server on loopback, plus target
parsing, ~/.ssh/config aliases and the known_hosts policy."""
from __future__ import annotations

import os
import shlex

import pytest

from sshd import keygen
from edgebench.host.errors import UserError
from edgebench.host.targets import ConnectOptions, open_target, parse_target

pytestmark = pytest.mark.ssh

HOSTILE = ["a b", "$(touch /tmp/pwned-edgebench)", "`id`", "x;y", "it's", "\"q\"", "*", "\\n"]


def ssh_options(env, known_hosts, **kw) -> ConnectOptions:
    kw.setdefault("identity_files", [str(env.client_key)])
    kw.setdefault("connect_timeout", 5)
    return ConnectOptions(known_hosts=str(known_hosts), allow_agent=False, look_for_keys=False,
                          **kw)


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path):
    """The same tests on both targets; `work` is a folder on the target both can write."""
    if request.param == "local":
        t = open_target("local")
        work = str(tmp_path / "work")
    else:
        env, server = request.getfixturevalue("ssh_env"), request.getfixturevalue("sshd")
        kh = request.getfixturevalue("known_hosts")
        t = open_target(server.target, ssh_options(env, kh))
        work = "~/" + request.getfixturevalue("remote_dir")
    t.run(["mkdir", "-p", t.expand(work)])
    t.work = t.expand(work)
    yield t
    t.close()


def test_run_quotes_every_word_and_streams_lines(target):
    lines = []
    res = target.run(["printf", "%s\\n", *HOSTILE], on_stdout=lines.append)
    assert res.ok and lines == HOSTILE
    assert not os.path.exists("/tmp/pwned-edgebench")


def test_run_reports_exit_codes_and_missing_commands(target):
    assert target.run(["sh", "-c", "echo oops >&2; exit 3"]).exit_code == 3
    assert target.run(["sh", "-c", "echo oops >&2; exit 3"]).stderr == "oops"
    assert target.run(["no-such-command-edgebench"]).exit_code == 127


def test_put_get_roundtrip_with_progress(target, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    seen = []
    target.put(src, f"{target.work}/f.bin", lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(data), len(data))
    target.get(f"{target.work}/f.bin", back)
    assert back.read_bytes() == data
    assert "f.bin" in target.listdir(target.work)
    assert target.exists(f"{target.work}/f.bin") and not target.exists(f"{target.work}/nope")
    assert target.listdir(f"{target.work}/missing") == []


def test_home_and_expand(target):
    home = target.home()
    assert home.startswith("/") and target.expand("~/x") == f"{home}/x"
    assert target.expand("rel/y") == f"{home}/rel/y" and target.expand("/abs") == "/abs"


def test_cwd_is_quoted(target):
    odd = f"{target.work}/dir with 'quote'"
    target.run(["mkdir", "-p", odd])
    assert target.run(["pwd"], cwd=odd).stdout == odd


@pytest.mark.parametrize("text,expect", [
    ("local", ("local", None, None, None)),
    ("pi@192.0.2.20", ("ssh", "192.0.2.20", "pi", None)),
    ("pi@jetson:2222", ("ssh", "jetson", "pi", 2222)),
    ("bench-pi", ("ssh", "bench-pi", None, None)),
    ("root@[::1]:22", ("ssh", "::1", "root", 22)),
])
def test_parse_target(text, expect):
    s = parse_target(text)
    assert (s.kind, s.host, s.user, s.port) == expect


@pytest.mark.parametrize("bad", ["pi@", "a b", "pi@host:port", "pi@host:99999", "x;rm -rf ~",
                                 "$(id)@h"])
def test_parse_target_refuses_garbage(bad):
    with pytest.raises(UserError):
        parse_target(bad)


def test_ssh_config_alias_is_resolved(ssh_env, sshd, known_hosts, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host bench-pi\n  HostName 127.0.0.1\n  User {ssh_env.user}\n"
                   f"  Port {sshd.port}\n  IdentityFile {ssh_env.client_key}\n")
    opts = ConnectOptions(known_hosts=str(known_hosts), ssh_config=str(cfg), allow_agent=False,
                          look_for_keys=False)
    with open_target("bench-pi", opts) as t:   # no -i: the key comes from the config
        assert t.run(["id", "-un"]).stdout == ssh_env.user
        assert t.describe() == f"{ssh_env.user}@127.0.0.1:{sshd.port}"


def test_unknown_host_refused_then_accept_new_records_and_verifies(ssh_env, sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    with pytest.raises(UserError, match="not known.*--accept-new-host-key") as err:
        open_target(sshd.target, ssh_options(ssh_env, kh))
    assert "SHA256:" in str(err.value) and not kh.exists()
    with open_target(sshd.target, ssh_options(ssh_env, kh, accept_new_host_key=True)) as t:
        assert t.run(["true"]).ok
    assert kh.read_text() == sshd.known_hosts_line()
    with open_target(sshd.target, ssh_options(ssh_env, kh)) as t:   # now verified, not re-added
        assert t.run(["true"]).ok
    assert kh.read_text().count("\n") == 1


def test_changed_host_key_refused_even_with_accept_new(ssh_env, sshd, tmp_path):
    keygen(tmp_path / "other_host_key")
    kind, b64 = (tmp_path / "other_host_key.pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {kind} {b64}\n")
    for accept in (False, True):
        with pytest.raises(UserError, match="REMOTE HOST IDENTIFICATION HAS CHANGED") as err:
            open_target(sshd.target, ssh_options(ssh_env, kh, accept_new_host_key=accept))
        assert "ssh-keygen -R" in str(err.value)
    assert kh.read_text().count("\n") == 1   # nothing was added


def test_host_known_only_by_another_key_type_is_refused(ssh_env, sshd, tmp_path):
    keygen(tmp_path / "rsa_host_key", kind="rsa")
    kind, b64 = (tmp_path / "rsa_host_key.pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {kind} {b64}\n")
    with pytest.raises(UserError, match="HAS CHANGED"):
        open_target(sshd.target, ssh_options(ssh_env, kh, accept_new_host_key=True))


def test_wrong_key_refused(ssh_env, sshd, known_hosts, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(UserError, match="authentication failed.*ssh-copy-id"):
        open_target(sshd.target, ssh_options(ssh_env, known_hosts, identity_files=[str(stranger)]))


def test_nothing_listening_is_a_link_error(ssh_env, known_hosts):
    from edgebench.host.targets import LinkDropped
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LinkDropped, match="cannot connect"):
        open_target(f"{ssh_env.user}@127.0.0.1:{port}", ssh_options(ssh_env, known_hosts))


def test_command_line_is_built_with_shlex_quote():
    from edgebench.host.targets.base import quote_argv
    argv = ["python3", "a b", "$(x)", "'"]
    assert shlex.split(quote_argv(argv)) == argv


def test_ssh_agent_key_is_used(ssh_env, sshd, known_hosts, tmp_path, monkeypatch):
    """A key held only by a real ssh-agent (no -i, no ~/.ssh/id_*) logs in."""
    import subprocess
    import time
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(ssh_env.client_key)], check=True,
                       stderr=subprocess.DEVNULL)
        opts = ConnectOptions(known_hosts=str(known_hosts), allow_agent=True, look_for_keys=False)
        with open_target(sshd.target, opts) as t:
            assert t.run(["true"]).ok
        opts.allow_agent = False
        with pytest.raises(UserError, match="authentication failed"):
            open_target(sshd.target, opts)
    finally:
        agent.kill()
        agent.wait()


def test_silent_server_hits_the_connect_timeout(ssh_env, known_hosts):
    """A port that accepts but never speaks SSH must not hang the deploy."""
    import socket
    import time
    from edgebench.host.targets import LinkDropped
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        t0 = time.monotonic()
        with pytest.raises(LinkDropped, match="cannot connect"):
            open_target(f"{ssh_env.user}@127.0.0.1:{silent.getsockname()[1]}",
                        ssh_options(ssh_env, known_hosts, connect_timeout=1))
        assert time.monotonic() - t0 < 5
