"""Opening SSH connections: the device directly, through a ProxyCommand, or through a chain of
jump hosts (each reached through a direct-tcpip channel of the hop before it). Every hop is
authenticated and its host key checked exactly like the device's (sshconfig.KnownHostsPolicy);
what each failure means is said in one line."""
from __future__ import annotations

import os
import socket

import paramiko

from edgebench.host import liblog
from edgebench.host.errors import UserError
from edgebench.host.targets import sshconfig
from edgebench.host.targets.base import LinkDropped, TargetSpec

# paramiko's defaults; larger windows (16, 64 MiB) measured no faster for puts or cat-gets here.
WINDOW_SIZE = 2 << 20
MAX_PACKET = 32768


class _Transport(paramiko.Transport):
    """paramiko.Transport that remembers what killed it: paramiko keeps the error only until
    someone asks (get_exception), and the next caller then sees a bare EOFError."""
    death = None

    @property
    def saved_exception(self):
        return self.__dict__.get("_saved")

    @saved_exception.setter
    def saved_exception(self, exc):
        self.__dict__["_saved"] = exc
        if exc is not None and self.death is None:
            self.death = exc


def _transport_factory(sock, **kw):
    return _Transport(sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET,
                      **kw)


def connect_route(spec: TargetSpec, route: sshconfig.Route, options: sshconfig.ConnectOptions,
                  known_hosts_path: str, config_known, clients: list, recorded: list) -> None:
    """Each jump host in turn, then the device through a direct-tcpip channel of the last
    hop (or through the ProxyCommand): every hop is authenticated and its host key checked
    exactly like the device's."""
    liblog.quiet()  # paramiko's own log lines belong in host.log, not on the terminal
    sock = None
    if route.proxy_command:
        try:
            sock = paramiko.ProxyCommand(route.proxy_command)
        except Exception as exc:  # paramiko wraps the failed exec in its own types
            raise UserError(f"{spec.name}: ProxyCommand {route.proxy_command!r} "
                            f"failed to start: {exc}") from None
    hops = list(route.jumps)
    for i, hop in enumerate(hops + [spec]):
        if i:
            sock = _tunnel(clients[-1], hops[i - 1], hop, options)
        role = "jump host" if i < len(hops) else "device"
        clients.append(_connect_one(hop, sock, options, known_hosts_path, config_known, role,
                                    recorded))

def _tunnel(client: paramiko.SSHClient, via: TargetSpec, to: TargetSpec,
            options: sshconfig.ConnectOptions) -> paramiko.Channel:
    transport = client.get_transport()
    where = f"jump host {via.user}@{via.host}:{via.port}"
    try:
        return transport.open_channel("direct-tcpip", (to.host, to.port), ("127.0.0.1", 0),
                                      timeout=options.connect_timeout)
    except paramiko.ChannelException as exc:
        if exc.code == 1:    # administratively prohibited: no retry will change that
            raise UserError(f"{where} refuses to forward to {to.host}:{to.port} "
                            f"({exc.text}); it needs AllowTcpForwarding/PermitOpen for it"
                            ) from None
        raise LinkDropped(f"{where}: cannot reach {to.host}:{to.port} ({exc.text})") from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise LinkDropped(f"{where}: cannot open a tunnel to {to.host}:{to.port}: "
                          f"{why(exc)}") from None

def _connect_one(spec: TargetSpec, sock, opt: sshconfig.ConnectOptions, known_hosts_path: str,
                 config_known, role: str, recorded: list) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    read_paths = [known_hosts_path] + (config_known or [])[1:] + ["/etc/ssh/ssh_known_hosts"]
    for path in read_paths:
        if os.path.exists(path):
            try:
                client.get_host_keys().load(path)
            except (OSError, paramiko.SSHException) as exc:
                raise UserError(f"cannot read known hosts file {path}: {exc}") from None
    policy = sshconfig.KnownHostsPolicy(known_hosts_path, opt.accept_new_host_key,
                                        client.get_host_keys(), role=role)
    client.set_missing_host_key_policy(policy)
    keys = [os.path.expanduser(k) for k in list(opt.identity_files) + list(spec.identity_files)]
    keys = [k for k in dict.fromkeys(keys) if os.path.exists(k)]
    where = f"{spec.user}@{spec.host}:{spec.port}"
    if role != "device":
        where = f"{role} {where}"
    try:
        client.connect(spec.host, port=spec.port, username=spec.user, key_filename=keys or None,
                       timeout=opt.connect_timeout, banner_timeout=opt.connect_timeout,
                       auth_timeout=opt.connect_timeout, allow_agent=opt.allow_agent,
                       look_for_keys=opt.look_for_keys, transport_factory=_transport_factory,
                       sock=sock)
    except UserError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise UserError(("jump host: " if role != "device" else "") + sshconfig.changed_message(
            sshconfig.host_key_name(spec.host, spec.port), exc.key, exc.expected_key,
            known_hosts_path)) from None
    except paramiko.PasswordRequiredException as exc:
        client.close()
        raise UserError(f"{where}: a key is passphrase-protected ({exc}); add it to your "
                        f"ssh-agent with ssh-add, then rerun") from None
    except paramiko.AuthenticationException as exc:
        client.close()
        tried = ", ".join(keys) or "ssh-agent and ~/.ssh/id_* keys"
        raise UserError(f"{where}: authentication failed ({exc}); tried {tried}. Install your "
                        f"public key on the device (ssh-copy-id -p {spec.port} "
                        f"{spec.user}@{spec.host}) or pass -i KEY") from None
    except socket.gaierror as exc:
        client.close()
        raise UserError(f"{where}: cannot resolve host name {spec.host!r} ({exc})") from None
    except paramiko.SSHException as exc:
        client.close()
        if "No authentication methods" in str(exc):
            raise UserError(f"{where}: authentication failed: no key to offer; pass -i KEY, "
                            f"load one into ssh-agent, or set IdentityFile in ~/.ssh/config"
                            ) from None
        raise LinkDropped(f"{where}: cannot connect: {why(exc)}") from None
    except (OSError, EOFError) as exc:
        client.close()
        raise LinkDropped(f"{where}: cannot connect: {why(exc)}") from None
    finally:
        recorded += policy.recorded
    client.get_transport().set_keepalive(opt.keepalive_s)
    return client


def why(exc: BaseException) -> str:
    """A cause in words; paramiko's EOFError has no text at all (the issue's `EOFError: `)."""
    if isinstance(exc, EOFError) or "connection dropped" in str(exc).lower():
        return "the connection was closed"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused (is sshd running there?)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, socket.timeout):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
