"""Can this machine run an emulated arm64 device? Each check ends in a UserError that says what to
install or enable; every command has a timeout, so a missing facility is a message, never a hang."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgebench.host.errors import UserError

APT_PACKAGES = "qemu-user-static binfmt-support mmdebstrap arch-test zstd"
INSTALL_HINT = f"apt-get install -y {APT_PACKAGES}"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
HANDLER = "qemu-aarch64"
# The tools each step needs, and the Debian package that has each.
BUILD_TOOLS = {"mmdebstrap": "mmdebstrap", "zstd": "zstd", "tar": "tar", "chroot": "coreutils"}
START_TOOLS = {"ip": "iproute2", "unshare": "util-linux", "chroot": "coreutils", "zstd": "zstd",
               "ssh-keygen": "openssh-client", "tar": "tar"}


def run_quiet(argv, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
    """A short system command with a deadline; a failure becomes a UserError naming it."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed; {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{' '.join(argv)} did not finish in {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}")
        raise UserError(f"{' '.join(argv)} failed: {detail.splitlines()[-1]}")
    return proc


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise UserError(f"{what} needs root (network namespaces, chroot and mounts); "
                        f"run it with sudo")


def require_tools(tools: dict) -> None:
    missing = {pkg for tool, pkg in tools.items()
               if not shutil.which(tool) and not Path("/usr/sbin", tool).exists()}
    if missing:
        names = ", ".join(t for t, p in tools.items() if p in missing)
        raise UserError(f"missing {names}: apt-get install -y {' '.join(sorted(missing))}")


def binfmt_state() -> dict:
    """What the kernel has: mounted?, handler text (None when absent)."""
    mounted = (BINFMT_DIR / "status").exists()
    handler = None
    if mounted and (BINFMT_DIR / HANDLER).exists():
        handler = (BINFMT_DIR / HANDLER).read_text()
    return {"mounted": mounted, "handler": handler}


def ensure_binfmt(fix: bool = True) -> list:
    """Make sure arm64 ELF files run here through qemu-user. With fix, mount binfmt_misc and
    enable the handler where the packages are installed. Returns notes on what it changed."""
    notes = []
    state = binfmt_state()
    if not state["mounted"]:
        if not fix:
            raise UserError(f"binfmt_misc is not mounted: mount -t binfmt_misc binfmt_misc "
                            f"{BINFMT_DIR}")
        proc = run_quiet(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                         check=False)
        if proc.returncode != 0:
            raise UserError(f"binfmt_misc is unavailable here (mount failed: "
                            f"{proc.stderr.strip()}); the kernel needs CONFIG_BINFMT_MISC and "
                            f"this container the right to mount it")
        notes.append(f"mounted binfmt_misc on {BINFMT_DIR}")
        state = binfmt_state()
    if not state["handler"] or state["handler"].splitlines()[0].strip() != "enabled":
        if not fix or not shutil.which("update-binfmts"):
            raise UserError(f"no enabled {HANDLER} binfmt handler: {INSTALL_HINT}, then "
                            f"update-binfmts --enable {HANDLER}")
        proc = run_quiet(["update-binfmts", "--enable", HANDLER], check=False)
        state = binfmt_state()
        if not state["handler"]:
            raise UserError(f"{HANDLER} binfmt handler missing after update-binfmts "
                            f"({proc.stderr.strip() or 'no message'}): {INSTALL_HINT}")
        notes.append(f"enabled the {HANDLER} binfmt handler")
    fields = {}
    for line in state["handler"].splitlines()[1:]:
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    # F ("fix binary"): the kernel opens qemu when the handler is registered, so arm64 programs
    # also start inside a chroot that has no qemu of its own.
    if "F" not in fields.get("flags", ""):
        raise UserError(f"the {HANDLER} binfmt handler lacks the F flag, so it cannot run inside "
                        f"a chroot: install qemu-user-static (its handler has F), then "
                        f"update-binfmts --enable {HANDLER}")
    return notes


def check_arm64_runs(rootfs: Path) -> None:
    """Run /bin/true of the rootfs; a clear message if arm64 programs do not start."""
    proc = run_quiet(["chroot", str(rootfs), "/bin/true"], timeout=60, check=False)
    if proc.returncode != 0:
        raise UserError(f"arm64 programs do not run here (chroot {rootfs} /bin/true: "
                        f"{proc.stderr.strip() or proc.returncode}); {INSTALL_HINT} and "
                        f"update-binfmts --enable {HANDLER}")
