"""The target interface: what every place a bundle can run (this machine, a board over SSH) offers.

Higher layers (transfer, deploy, doctor) use only these methods, so the same code and most tests
run against `LocalTarget` and `SSHTarget` alike. Paths on the target are POSIX strings; a leading
`~/` means the target user's home.
"""
from __future__ import annotations

import abc
import shlex
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

# progress(bytes_done, bytes_total): called as a transfer advances.
Progress = Callable[[int, int], None]
# on_line(text): one line of a command's output, without its newline.
LineSink = Callable[[str], None]


class LinkDropped(Exception):
    """The connection to the target went away mid-operation; the caller may reconnect and retry.

    `why` is the cause alone ("connection reset", "no answer for 60 s"); `placed` is true once the
    message also says what was being done (and how far it got), so outer layers keep it as is."""

    def __init__(self, message: str, why: Optional[str] = None, placed: bool = False):
        super().__init__(message)
        self.why = why or message
        self.placed = placed


def dropped_while(target: "Target", doing: str, exc: LinkDropped) -> LinkDropped:
    """The message a user reads: which device, what was being done, how far it got, and why."""
    if exc.placed:
        return exc
    return LinkDropped(f"{target.describe()}: link dropped while {doing}: {exc.why}", exc.why,
                       placed=True)


@dataclass
class CommandResult:
    exit_code: int
    stdout: str = ""   # the tail kept in memory (long outputs go to on_line callbacks)
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class TargetSpec:
    """Where a device is and how to reach it; pure data, parsed from --target or an inventory.

    kind is "local" or "ssh". For ssh, host/user/port/identity_files may be filled in later from
    ~/.ssh/config (see sshconfig.resolve)."""
    name: str
    kind: str = "ssh"
    host: Optional[str] = None
    user: Optional[str] = None
    port: Optional[int] = None
    identity_files: list = field(default_factory=list)
    python: Optional[str] = None       # interpreter on the device (a venv's python, say)
    remote_dir: Optional[str] = None   # working folder on the device (default ~/.edgebench)
    proxy_jump: Optional[str] = None   # jump hosts, as OpenSSH's ProxyJump / -J: [user@]host[:port],...

    def label(self) -> str:
        if self.kind == "local":
            return "local"
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port and self.port != 22 else ""
        return f"{who}{self.host or self.name}{port}"


def quote_argv(argv: Sequence[str]) -> str:
    """The one place a remote command line is made: every word shell-quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


class Target(abc.ABC):
    """A device we can copy files to, run commands on and copy files from."""

    spec: TargetSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        return self.spec.label()

    # --- commands ---------------------------------------------------------------------------
    @abc.abstractmethod
    def run(self, argv: Sequence[str], *, cwd: Optional[str] = None,
            on_stdout: Optional[LineSink] = None, on_stderr: Optional[LineSink] = None,
            timeout: Optional[float] = None, stdin_data: Optional[bytes] = None) -> CommandResult:
        """Run argv (never through an unquoted shell), streaming output lines as they arrive."""

    @abc.abstractmethod
    def start(self, argv: Sequence[str]) -> "Process":
        """Start argv and return at once; the process lives as long as the handle (used for the
        device lock, which must be held by a live process on the device)."""

    # --- files ------------------------------------------------------------------------------
    @abc.abstractmethod
    def put(self, local_path: str, remote_path: str, progress: Optional[Progress] = None,
            offset: int = 0) -> None:
        """Copy one file to the target, as is (atomicity is transfer.py's job). With offset > 0 the
        remote file already holds the first `offset` bytes (checked by the caller) and only the
        rest is written, at that offset; progress counts from offset."""

    @abc.abstractmethod
    def get(self, remote_path: str, local_path: str, progress: Optional[Progress] = None) -> None:
        """Copy one file from the target."""

    @abc.abstractmethod
    def listdir(self, remote_path: str) -> list:
        """Names in a folder; [] when the folder does not exist."""

    @abc.abstractmethod
    def exists(self, remote_path: str) -> bool: ...

    @abc.abstractmethod
    def home(self) -> str:
        """The absolute home folder of the target user."""

    def expand(self, remote_path: str) -> str:
        """Make a target path absolute: `~/x` and relative paths are taken from the home folder."""
        if remote_path == "~":
            return self.home()
        if remote_path.startswith("~/"):
            return self.home().rstrip("/") + "/" + remote_path[2:]
        if not remote_path.startswith("/"):
            return self.home().rstrip("/") + "/" + remote_path
        return remote_path

    def sh(self, script: str, **kwargs) -> CommandResult:
        """Run a small POSIX sh script whose words were already quoted with quote_argv."""
        return self.run(["sh", "-c", script], **kwargs)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Process(abc.ABC):
    """A command started on the target and still running."""

    @abc.abstractmethod
    def readline(self, timeout: float) -> Optional[str]:
        """The next stdout line, or None at end of output / timeout."""

    @abc.abstractmethod
    def send(self, data: bytes) -> bool:
        """Write to its stdin; False when that is no longer possible."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Close its input and end it."""
