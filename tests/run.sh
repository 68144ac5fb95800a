#!/usr/bin/env bash
# The README's test command. On a fresh machine of this kind it installs what the suite needs
# (OpenSSH server for the loopback deploy tests, the project venv), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
fi
# The virtual Raspberry Pi (tests/test_emulated_pi.py): arm64 Debian under qemu-user.
if ! command -v mmdebstrap >/dev/null 2>&1 || ! command -v zstd >/dev/null 2>&1 \
   || [ ! -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    qemu-user-static binfmt-support mmdebstrap arch-test zstd >/dev/null
fi
export EDGEBENCH_REQUIRE_EMULATION=1  # missing emulation fails the tests instead of skipping them
[ -x .venv/bin/python ] || python3.11 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
