"""Virtual Raspberry Pis for the test suite: arm64 Debian under qemu-user with its own sshd, each in
a network namespace the test made (edgebench.host.emulate). Images come from the cache outside the
repo (built on a cold cache, both at once: 1.5-2 min each on an idle machine before ONNX Runtime
joined them, which adds ~50 s of byte-compiling each, its sympy above all; many minutes more on a
busy one); every session starts its devices from a freshly extracted disk and throws them away
afterwards.

Use from a test file: `from emulated_pi import *`."""
from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
from pathlib import Path

import pytest

from edgebench.device.options import AgentOptions
from edgebench.host.errors import UserError
from edgebench.host.targets import ConnectOptions

# Set by tests/run.sh after it installs qemu-user-static & co.: a machine that should have them
# fails loudly instead of skipping.
REQUIRE_ENV = "EDGEBENCH_REQUIRE_EMULATION"
# Short but real measurements: qemu makes every invoke() ~350x slower than native.
AGENT_OPTIONS = AgentOptions(warmup=1, min_runs=5, min_seconds=0.01, max_seconds=5.0)


def _unavailable(why: str):
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"emulated devices unavailable: {why}")
    pytest.skip(f"emulated devices unavailable: {why}")


@pytest.fixture(scope="session")
def emulation_host():
    """This machine can run arm64 devices (root, tools, binfmt_misc), or the test is skipped
    with the exact fix (failed instead when EDGEBENCH_REQUIRE_EMULATION=1)."""
    from edgebench.host.emulate import hostcheck

    if os.geteuid() != 0:
        _unavailable("needs root (network namespaces, chroot, mounts)")
    try:
        hostcheck.require_tools({**hostcheck.BUILD_TOOLS, **hostcheck.START_TOOLS})
        if not shutil.which("qemu-aarch64-static") and not os.path.exists(
                "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"):
            raise UserError(f"qemu-user-static is not installed: {hostcheck.INSTALL_HINT}")
        hostcheck.ensure_binfmt()
    except UserError as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session")
def emulated_images(emulation_host) -> dict:
    """Both images, built concurrently on a cold cache (mmdebstrap waits on the network and on
    qemu in turns, so two builds share 2 cores well); {name: build info}."""
    from edgebench.host.emulate import ensure_image, get_image, image_info

    names = ("bookworm", "bullseye")
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda n: ensure_image(get_image(n)), names))
    return {n: image_info(get_image(n)) for n in names}


def _device(image: str):
    """A device of this session only (two sessions may run at once on a shared machine), on a
    fresh disk; devices left behind by sessions that died are thrown away."""
    from edgebench.host import emulate

    for state, _ in emulate.status():
        owner = re.match(r"ebtest(\d+)-", state.name)
        if owner and not Path(f"/proc/{owner.group(1)}").exists():
            emulate.stop(state.name, purge=True)
    name = f"ebtest{os.getpid()}-{image}"
    state = emulate.start(image, name)
    yield state
    emulate.stop(name, purge=True)


@pytest.fixture(scope="session")
def pi_bookworm(emulated_images):
    yield from _device("bookworm")


@pytest.fixture(scope="session")
def pi_bullseye(emulated_images):
    yield from _device("bullseye")


def device_options(state, known_hosts=None, connect_timeout: float = 10) -> ConnectOptions:
    """Trust only the device's own known_hosts file; never ~/.ssh or an agent."""
    return ConnectOptions(known_hosts=str(known_hosts or state.known_hosts),
                          identity_files=[state.client_key], allow_agent=False,
                          look_for_keys=False, connect_timeout=connect_timeout)


__all__ = ["AGENT_OPTIONS", "device_options", "emulated_images",
           "emulation_host", "pi_bookworm", "pi_bullseye"]
