"""SSHTarget: a device reached over SSH with paramiko, trusted only through known_hosts.

Uploads use paramiko's pipelined SFTP put (~100-140 MB/s on loopback, at or above OpenSSH scp).
Downloads do not use SFTP: paramiko's prefetching SFTP get ran at 5-45 MB/s here with multi-second
stalls whatever the window or prefetch depth, while `cat FILE` on an exec channel streams at
~110-140 MB/s (benchmarks/README.md, "Deploy"). Commands run over exec channels, every word
shell-quoted."""
from __future__ import annotations

import collections
import os
import socket
import threading
from typing import Optional, Sequence

import paramiko

from edgebench.host.errors import UserError
from edgebench.host.targets import sshconfig
from edgebench.host.targets.base import (
    CommandResult, LinkDropped, Process, Progress, Target, TargetSpec, quote_argv,
)

# paramiko's defaults; larger windows (16, 64 MiB) measured no faster for puts or cat-gets here.
WINDOW_SIZE = 2 << 20
MAX_PACKET = 32768
_CHUNK = 1 << 20
_TAIL_LINES = 200


def _transport_factory(sock, **kw):
    return paramiko.Transport(sock, default_window_size=WINDOW_SIZE,
                              default_max_packet_size=MAX_PACKET, **kw)


class SSHTarget(Target):
    def __init__(self, spec: TargetSpec, options: Optional[sshconfig.ConnectOptions] = None):
        self.options = options or sshconfig.ConnectOptions()
        self.spec, config_known = sshconfig.resolve(spec, self.options)
        self.known_hosts_path = os.path.expanduser(
            self.options.known_hosts or (config_known[0] if config_known else "~/.ssh/known_hosts"))
        self._client = self._connect(config_known)
        self._sftp: Optional[paramiko.SFTPClient] = None
        self._home: Optional[str] = None
        self._lock = threading.Lock()

    # --- connection -------------------------------------------------------------------------
    def _connect(self, config_known) -> paramiko.SSHClient:
        spec, opt = self.spec, self.options
        client = paramiko.SSHClient()
        read_paths = [self.known_hosts_path] + (config_known or [])[1:] + ["/etc/ssh/ssh_known_hosts"]
        for path in read_paths:
            if os.path.exists(path):
                try:
                    client.get_host_keys().load(path)
                except (OSError, paramiko.SSHException) as exc:
                    raise UserError(f"cannot read known hosts file {path}: {exc}") from None
        client.set_missing_host_key_policy(sshconfig.KnownHostsPolicy(
            self.known_hosts_path, opt.accept_new_host_key, client.get_host_keys()))
        keys = [os.path.expanduser(k) for k in list(opt.identity_files) + list(spec.identity_files)]
        keys = [k for k in dict.fromkeys(keys) if os.path.exists(k)]
        where = f"{spec.user}@{spec.host}:{spec.port}"
        try:
            client.connect(spec.host, port=spec.port, username=spec.user, key_filename=keys or None,
                           timeout=opt.connect_timeout, banner_timeout=opt.connect_timeout,
                           auth_timeout=opt.connect_timeout, allow_agent=opt.allow_agent,
                           look_for_keys=opt.look_for_keys, transport_factory=_transport_factory)
        except UserError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise UserError(sshconfig.changed_message(
                sshconfig.host_key_name(spec.host, spec.port), exc.key, exc.expected_key,
                self.known_hosts_path)) from None
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
            raise LinkDropped(f"{where}: cannot connect: {exc or type(exc).__name__}") from None
        except (OSError, EOFError) as exc:
            client.close()
            raise LinkDropped(f"{where}: cannot connect: {exc or type(exc).__name__}") from None
        client.get_transport().set_keepalive(opt.keepalive_s)
        return client

    def _transport(self) -> paramiko.Transport:
        t = self._client.get_transport()
        if t is None or not t.is_active():
            raise LinkDropped(f"{self.describe()}: connection lost")
        return t

    def sftp(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                try:
                    self._sftp = self._client.open_sftp()
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise LinkDropped(f"{self.describe()}: sftp failed: {exc}") from None
            return self._sftp

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()

    def home(self) -> str:
        if self._home is None:
            self._home = self._io(lambda: self.sftp().normalize("."))
        return self._home

    def _io(self, fn):
        """Run one SFTP operation, turning a dead link into LinkDropped."""
        try:
            return fn()
        except (EOFError, socket.error, paramiko.SSHException) as exc:
            if isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and exc.errno):
                raise
            raise LinkDropped(f"{self.describe()}: link dropped during transfer "
                              f"({exc or type(exc).__name__})") from None

    # --- commands ---------------------------------------------------------------------------
    def _open(self, argv: Sequence[str], cwd: Optional[str]) -> paramiko.Channel:
        cmd = quote_argv(argv)
        if cwd:
            cmd = f"cd {quote_argv([self.expand(cwd)])} && {cmd}"
        try:
            chan = self._transport().open_session(timeout=self.options.connect_timeout)
            chan.exec_command(cmd)
        except (EOFError, socket.error, paramiko.SSHException) as exc:
            raise LinkDropped(f"{self.describe()}: cannot start a command: {exc}") from None
        return chan

    def run(self, argv: Sequence[str], *, cwd=None, on_stdout=None, on_stderr=None,
            timeout=None, stdin_data=None) -> CommandResult:
        chan = self._open(argv, cwd)
        out_tail: collections.deque = collections.deque(maxlen=_TAIL_LINES)
        err_tail: collections.deque = collections.deque(maxlen=_TAIL_LINES)

        def pump(f, sink, tail):
            try:
                for raw in f:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    tail.append(line)
                    if sink:
                        sink(line)
            except (OSError, EOFError, paramiko.SSHException):
                pass
        pumps = [threading.Thread(target=pump, args=(chan.makefile("rb"), on_stdout, out_tail),
                                  daemon=True),
                 threading.Thread(target=pump, args=(chan.makefile_stderr("rb"), on_stderr,
                                                     err_tail), daemon=True)]
        for t in pumps:
            t.start()
        if stdin_data is not None:
            chan.sendall(stdin_data)
        chan.shutdown_write()
        if not chan.status_event.wait(timeout):
            chan.close()
        for t in pumps:
            t.join(5)
        code = chan.recv_exit_status() if chan.exit_status_ready() else -1
        chan.close()
        if code == -1:
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise LinkDropped(f"{self.describe()}: link dropped while running "
                                  f"{argv[0]} ({(err_tail or [''])[-1]})")
        return CommandResult(code, "\n".join(out_tail), "\n".join(err_tail))

    def start(self, argv: Sequence[str]) -> Process:
        return _SSHProcess(self._open(argv, None))

    # --- files ------------------------------------------------------------------------------
    def put(self, local_path, remote_path, progress: Optional[Progress] = None) -> None:
        path = self.expand(remote_path)
        self._io(lambda: self.sftp().put(str(local_path), path, callback=progress, confirm=True))

    def get(self, remote_path, local_path, progress: Optional[Progress] = None) -> None:
        path = self.expand(remote_path)
        total = self._io(lambda: self.sftp().stat(path).st_size)
        chan = self._open(["cat", "--", path], None)
        done = 0
        try:
            with open(local_path, "wb") as f:
                while True:
                    data = chan.recv(_CHUNK)
                    if not data:
                        break
                    f.write(data)
                    done += len(data)
                    if progress:
                        progress(done, total)
            code = chan.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise LinkDropped(f"{self.describe()}: link dropped while fetching {path}: {exc}") \
                from None
        finally:
            chan.close()
        if code != 0 or done < total:
            if code == -1 or not self._client.get_transport().is_active():
                raise LinkDropped(f"{self.describe()}: link dropped while fetching {path}")
            raise OSError(f"{self.describe()}: reading {path} failed (cat exited {code})")

    def listdir(self, remote_path: str) -> list:
        try:
            return self._io(lambda: self.sftp().listdir(self.expand(remote_path)))
        except FileNotFoundError:
            return []

    def exists(self, remote_path: str) -> bool:
        try:
            self._io(lambda: self.sftp().stat(self.expand(remote_path)))
            return True
        except FileNotFoundError:
            return False


class _SSHProcess(Process):
    def __init__(self, chan: paramiko.Channel):
        self._chan = chan
        self._file = chan.makefile("rb")

    def readline(self, timeout: float) -> Optional[str]:
        self._chan.settimeout(timeout)
        try:
            raw = self._file.readline()
        except (socket.timeout, OSError, EOFError, paramiko.SSHException):
            return None
        return raw.decode("utf-8", "replace").rstrip("\r\n") if raw else None

    def stop(self) -> None:
        try:
            self._chan.shutdown_write()
            self._chan.status_event.wait(5)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        self._chan.close()
