"""SSHTarget: a device reached over SSH with paramiko, trusted only through known_hosts.

Uploads are pipelined SFTP writes like paramiko's own put (~100-140 MB/s on loopback, at or
above OpenSSH scp).
Downloads do not use SFTP: paramiko's prefetching SFTP get ran at 5-45 MB/s here with multi-second
stalls whatever the window or prefetch depth, while `cat FILE` on an exec channel streams at
~110-140 MB/s (benchmarks/README.md, "Deploy"). Commands run over exec channels, every word
shell-quoted.

A link can die loudly (a reset, EOF) or silently (Wi-Fi gone: no error for hours). Keepalives
that want an answer run beside every connection; one left unanswered for link_timeout_s closes
the connection, and every operation blocked on it raises LinkDropped. Jump hosts (ProxyJump, -J)
are chained through direct-tcpip channels, ProxyCommand through paramiko.ProxyCommand."""
from __future__ import annotations

import collections
import os
import socket
import sys
import threading
import time
from typing import Optional, Sequence

import paramiko

from edgebench.host.targets import sshconfig
from edgebench.host.targets.sshconnect import connect_route
from edgebench.host.targets.sshconnect import why as _why
from edgebench.host.targets.base import (
    CommandResult, LinkDropped, Process, Progress, Target, TargetSpec, quote_argv,
)

_CHUNK = 1 << 20
_PUT_CHUNK = 32768   # paramiko's SFTP request size: one write request each
_TAIL_LINES = 200


class SSHTarget(Target):
    def __init__(self, spec: TargetSpec, options: Optional[sshconfig.ConnectOptions] = None):
        self.options = options or sshconfig.ConnectOptions()
        self.spec, config_known, self.route = sshconfig.resolve(spec, self.options)
        self.known_hosts_path = os.path.expanduser(
            self.options.known_hosts or (config_known[0] if config_known else "~/.ssh/known_hosts"))
        self.recorded: list = []     # host keys recorded under --accept-new-host-key, every hop
        self._clients: list = []     # jump hosts first, the device last
        self._silent_s: Optional[float] = None   # set when the watchdog gave the link up
        self._closed = threading.Event()
        try:
            connect_route(self.spec, self.route, self.options, self.known_hosts_path,
                          config_known, self._clients, self.recorded)
        except BaseException:
            self._close_clients()
            raise
        self._client = self._clients[-1]
        for line in self.recorded:
            sys.stderr.write(f"edgebench: {self.spec.name}: {line}\n")
        self._sftp: Optional[paramiko.SFTPClient] = None
        self._home: Optional[str] = None
        self._lock = threading.Lock()
        self._answered = time.monotonic()
        threading.Thread(target=self._ping, daemon=True, name="ssh-ping").start()
        threading.Thread(target=self._watch, daemon=True, name="ssh-watchdog").start()

    # --- liveness -----------------------------------------------------------------------------
    def _ping(self) -> None:
        """Keepalives that want an answer (OpenSSH answers every global request, known or not):
        the only way to notice a link that vanished without a reset."""
        interval = min(5.0, max(0.2, self.options.link_timeout_s / 12))
        while not self._closed.is_set():
            t = self._client.get_transport()
            if t is None or not t.is_active():
                return
            try:
                t.global_request("keepalive@openssh.com", wait=True)
            except (OSError, EOFError, paramiko.SSHException):
                return
            if t.is_active():
                self._answered = time.monotonic()
            self._closed.wait(interval)

    def _watch(self) -> None:
        """Give up a link whose keepalives went unanswered for link_timeout_s: closing it wakes
        every blocked read and write, which then raise LinkDropped."""
        interval = min(1.0, max(0.1, self.options.link_timeout_s / 24))
        while not self._closed.wait(interval):
            silent = time.monotonic() - self._answered
            if silent > self.options.link_timeout_s:
                self._silent_s = silent
                self._close_clients()
                return

    def _why(self, exc: BaseException) -> str:
        if self._silent_s is not None:
            return f"no answer from the device for {self._silent_s:.0f} s (the link went silent)"
        # What killed the transport (a reset, say) beats what the caller saw next (EOF).
        saved = getattr(self._client.get_transport(), "death", None)
        if isinstance(saved, (OSError, EOFError)) and isinstance(exc, (EOFError, OSError)):
            return _why(saved)
        return _why(exc)

    def _alive(self) -> bool:
        t = self._client.get_transport()
        return self._silent_s is None and t is not None and t.is_active()

    def _transport(self) -> paramiko.Transport:
        if not self._alive():
            raise LinkDropped(f"{self.describe()}: connection lost",
                              self._why(EOFError()))
        return self._client.get_transport()

    def sftp(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                try:
                    self._sftp = self._client.open_sftp()
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise LinkDropped(f"{self.describe()}: sftp failed: {self._why(exc)}",
                                      self._why(exc)) from None
            return self._sftp

    def _close_clients(self) -> None:
        for client in reversed(self._clients):
            try:
                client.close()
            except Exception:  # closing a half-dead link must never raise
                pass

    def close(self) -> None:
        self._closed.set()
        if getattr(self, "_sftp", None) is not None:
            try:
                self._sftp.close()
            except Exception:  # the link may already be gone
                pass
        self._close_clients()

    def home(self) -> str:
        if self._home is None:
            self._home = self._io(lambda: self.sftp().normalize("."))
        return self._home

    def _io(self, fn):
        """Run one SFTP operation, turning a dead link into LinkDropped. An error while the link
        still works is the device's answer (no such file, disk full) and is raised as is."""
        try:
            return fn()
        except (EOFError, socket.error, paramiko.SSHException) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, socket.timeout) and self._alive():
                raise
            raise LinkDropped(f"{self.describe()}: link dropped during transfer "
                              f"({self._why(exc)})", self._why(exc)) from None

    # --- commands ---------------------------------------------------------------------------
    def _open(self, argv: Sequence[str], cwd: Optional[str]) -> paramiko.Channel:
        cmd = quote_argv(argv)
        if cwd:
            cmd = f"cd {quote_argv([self.expand(cwd)])} && {cmd}"
        try:
            chan = self._transport().open_session(timeout=self.options.connect_timeout)
            chan.exec_command(cmd)
        except (EOFError, socket.error, paramiko.SSHException) as exc:
            raise LinkDropped(f"{self.describe()}: cannot start a command: {self._why(exc)}",
                              self._why(exc)) from None
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
        try:
            if stdin_data is not None:
                chan.sendall(stdin_data)
            chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            if self._alive():
                raise
        if not chan.status_event.wait(timeout):
            _close(chan)
        for t in pumps:
            t.join(5)
        code = chan.recv_exit_status() if chan.exit_status_ready() else -1
        _close(chan)
        if code == -1 and not self._alive():
            why = self._why(EOFError())
            raise LinkDropped(f"{self.describe()}: link dropped while running {argv[0]} "
                              f"({why})", why)
        return CommandResult(code, "\n".join(out_tail), "\n".join(err_tail))

    def start(self, argv: Sequence[str]) -> Process:
        return _SSHProcess(self, self._open(argv, None))

    # --- files ------------------------------------------------------------------------------
    def put(self, local_path, remote_path, progress: Optional[Progress] = None,
            offset: int = 0) -> None:
        """SFTP writes, pipelined as paramiko's own put (its 32 KiB requests), from `offset`."""
        path = self.expand(remote_path)
        total = os.path.getsize(local_path)
        done = offset

        def write():
            nonlocal done
            with open(local_path, "rb") as src, \
                    self.sftp().open(path, "r+b" if offset else "wb") as dst:
                dst.set_pipelined(True)
                if offset:
                    src.seek(offset)
                    dst.seek(offset)
                for data in iter(lambda: src.read(_PUT_CHUNK), b""):
                    dst.write(data)
                    done += len(data)
                    if progress:
                        progress(done, total)
            return self.sftp().stat(path).st_size
        try:
            size = self._io(write)
        except LinkDropped as exc:
            exc.sent = done
            raise
        if size != total:
            raise OSError(f"{self.describe()}: {path} holds {size} bytes after the upload, "
                          f"expected {total}")

    def get(self, remote_path, local_path, progress: Optional[Progress] = None) -> None:
        path = self.expand(remote_path)
        total = self._io(lambda: self.sftp().stat(path).st_size)
        chan = self._open(["cat", "--", path], None)
        done = 0
        code = -1
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
            if self._alive() and isinstance(exc, OSError) and not isinstance(exc, socket.timeout):
                raise
        finally:
            _close(chan)
        if code != 0 or done < total:
            if code == -1 or not self._alive():
                why = self._why(EOFError())
                raise LinkDropped(f"{self.describe()}: link dropped while fetching {path} "
                                  f"({done:,} of {total:,} bytes had arrived): {why}", why,
                                  placed=True)
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


def _close(chan: paramiko.Channel) -> None:
    """Closing a channel sends a message, which raises on a dead link; it is closed either way."""
    try:
        chan.close()
    except (OSError, EOFError, paramiko.SSHException):
        pass


class _SSHProcess(Process):
    def __init__(self, target: SSHTarget, chan: paramiko.Channel):
        self._target = target
        self._chan = chan
        self._file = chan.makefile("rb")
        self._send_lock = threading.Lock()

    def readline(self, timeout: float) -> Optional[str]:
        """None at a timeout or the end of output; LinkDropped when the link is gone."""
        self._chan.settimeout(timeout)
        try:
            raw = self._file.readline()
        except socket.timeout:
            raw = None
        except (OSError, EOFError, paramiko.SSHException):
            raw = b""
        if not raw and not self._target._alive():
            why = self._target._why(EOFError())
            raise LinkDropped(f"{self._target.describe()}: link dropped ({why})", why)
        return raw.decode("utf-8", "replace").rstrip("\r\n") if raw else None

    def send(self, data: bytes) -> bool:
        with self._send_lock:
            try:
                self._chan.sendall(data)
                return True
            except (OSError, EOFError, paramiko.SSHException):
                return False

    def stop(self) -> None:
        try:
            self._chan.shutdown_write()
            self._chan.status_event.wait(5)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        _close(self._chan)
