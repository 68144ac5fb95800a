"""Build an emulated device's image once and cache it as a zstd tarball keyed by its recipe.

Steps: `pip download` the recipe's aarch64 wheels on the host (the one network step besides apt);
mmdebstrap an arm64 Debian rootfs with the recipe's packages; install the wheels into it with the
host's pip (`--target --platform --no-index`, in a clean environment so the host's PIP_* settings
stay out); add the login user; byte-compile with the device's own python under qemu; pack.

pip never runs inside the rootfs: under qemu it is slow, and TOOLCHAIN.md saw it fail on host
PIP_* settings leaking in. The host's pip installs for another platform exactly as pip on the
device would (same wheels, same dist-info)."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from edgebench.host.emulate import hostcheck
from edgebench.host.emulate.images import (
    ARCH, DEVICE_USER, ImageRecipe, cache_root, image_info_path, image_path, wheel_dir,
)
from edgebench.host.errors import UserError
from edgebench.host.files import atomic_path

Log = Callable[[str], None]
BUILD_TIMEOUT_S = 1800


def ensure_image(recipe: ImageRecipe, log: Optional[Log] = None, rebuild: bool = False) -> Path:
    """The cached tarball for recipe, built first when absent (or when rebuild). Concurrent
    callers (two test sessions, say) wait for one build instead of racing."""
    log = log or (lambda msg: None)
    path = image_path(recipe)
    if path.exists() and not rebuild:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() and not rebuild:
            return path
        build_image(recipe, log)
    return path


def image_info(recipe: ImageRecipe) -> dict:
    """What went into a cached image (wheels installed, build seconds); {} when not built."""
    try:
        return json.loads(image_info_path(recipe).read_text())
    except (OSError, ValueError):
        return {}


def build_image(recipe: ImageRecipe, log: Log) -> Path:
    hostcheck.require_root("building an emulated image")
    hostcheck.require_tools(hostcheck.BUILD_TOOLS)
    hostcheck.ensure_binfmt()
    t0 = time.monotonic()
    wheels = fetch_wheels(recipe, log)
    work = Path(tempfile.mkdtemp(prefix=f"build-{recipe.name}-", dir=_tmp_root()))
    try:
        rootfs = work / "rootfs"
        logfile = cache_root() / "logs" / f"build-{recipe.name}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        log(f"mmdebstrap {recipe.suite} {ARCH} (log: {logfile})")
        _mmdebstrap(recipe, rootfs, logfile)
        log(f"installing {', '.join(recipe.wheels)} from {wheels}")
        installed = install_wheels(recipe, rootfs, wheels)
        _configure(recipe, rootfs)
        out = image_path(recipe)
        log(f"packing {out}")
        with atomic_path(out) as tmp:
            hostcheck.run_quiet(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
                                 "-I", "zstd -T0 -6 -q", "-C", str(rootfs), "-cf", str(tmp),
                                 "."], timeout=600)
        info = {"image": recipe.name, "key": recipe.key, "suite": recipe.suite, "arch": ARCH,
                "python": recipe.python, "wheels": installed, "runtime": recipe.runtime,
                "runtime_version": installed.get(recipe.runtime_dist),
                "build_seconds": round(time.monotonic() - t0, 1),
                "size_bytes": out.stat().st_size,
                "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        image_info_path(recipe).write_text(json.dumps(info, indent=1))
        log(f"built {out.name} ({out.stat().st_size / 1e6:.0f} MB) in {info['build_seconds']} s")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tmp_root() -> Path:
    root = cache_root() / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _pip_target_args(recipe: ImageRecipe) -> list:
    abi = "cp" + recipe.python.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", recipe.python, "--implementation", "cp",
            "--abi", abi]
    for tag in recipe.platforms:
        args += ["--platform", tag]
    return args


def fetch_wheels(recipe: ImageRecipe, log: Log) -> Path:
    """pip download the recipe's wheels (and their dependencies) for aarch64, once."""
    dest = wheel_dir(recipe)
    if (dest / ".complete").exists():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=_tmp_root()))
    log(f"pip download {' '.join(recipe.wheels)} for {recipe.platforms[0]}, cp{recipe.python}")
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet",
                               "--disable-pip-version-check", "-d", str(tmp),
                               *_pip_target_args(recipe), *recipe.wheels],
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError("pip download of the device wheels took over 10 minutes") from None
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = [line for line in proc.stderr.splitlines() if "ERROR" in line] or ["no message"]
        raise UserError(f"pip download for the {recipe.name} image failed: {last[-1]}")
    (tmp / ".complete").write_text("\n".join(recipe.wheels) + "\n")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def install_wheels(recipe: ImageRecipe, rootfs: Path, wheels: Path) -> dict:
    """Install offline into the rootfs's site folder; returns {distribution: version}."""
    site = rootfs / recipe.site_packages
    site.mkdir(parents=True, exist_ok=True)
    # A clean environment: no PIP_INDEX_URL / PIP_FIND_LINKS / pip.conf of the host.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PIP_CONFIG_FILE": os.devnull,
           "HOME": str(rootfs.parent), "LANG": "C.UTF-8"}
    _run_env([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
              str(wheels), "--target", str(site), "--no-compile", "--no-warn-conflicts",
              "--no-cache-dir", "--disable-pip-version-check", *_pip_target_args(recipe),
              *recipe.wheels], env)
    installed = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name[:-len(".dist-info")].rpartition("-")
        installed[name.lower().replace("_", "-")] = version
    shutil.rmtree(site / "bin", ignore_errors=True)   # console scripts with the host's shebang
    return installed


def _run_env(argv, env) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        raise UserError(f"{argv[2:4]} took over 10 minutes") from None
    if proc.returncode != 0:
        raise UserError(f"installing the device wheels failed: "
                        f"{(proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1]}")


def _mmdebstrap(recipe: ImageRecipe, rootfs: Path, logfile: Path) -> None:
    argv = ["mmdebstrap", f"--arch={ARCH}", "--variant=essential",
            f"--include={','.join(recipe.packages)}",
            # Each device gets its own host key at start; none may be baked into the image.
            "--customize-hook=rm -f \"$1\"/etc/ssh/ssh_host_*",
            recipe.suite, str(rootfs), *recipe.sources]
    with open(logfile, "w") as out:
        try:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"mmdebstrap {recipe.suite} ran over {BUILD_TIMEOUT_S} s; see "
                            f"{logfile}") from None
    if proc.returncode != 0:
        tail = [line for line in logfile.read_text(errors="replace").splitlines()
                if line.startswith("E:")] or ["see the log"]
        raise UserError(f"mmdebstrap {recipe.suite} failed: {tail[0]} ({logfile})")


def _configure(recipe: ImageRecipe, rootfs: Path) -> None:
    """The login user (unlocked: sshd with UsePAM no refuses locked accounts) and .pyc files
    compiled by the device's python, so imports under qemu do not recompile every time."""
    chroot = ["chroot", str(rootfs)]
    hostcheck.run_quiet(chroot + ["useradd", "-m", "-s", "/bin/sh", DEVICE_USER])
    hostcheck.run_quiet(chroot + ["usermod", "-p", "*", DEVICE_USER])
    compile_all = chroot + ["python3", "-m", "compileall", "-q", "/" + recipe.site_packages]
    parallel = hostcheck.run_quiet(compile_all + ["-j", "0"], timeout=900, check=False)
    if parallel.returncode != 0:
        # bullseye's Python 3.9 under qemu-user cannot make the worker pool's semaphore (ENOSYS):
        # compile in one process instead of shipping no .pyc at all.
        hostcheck.run_quiet(compile_all, timeout=1800, check=False)
    for junk in ("var/cache/apt", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
