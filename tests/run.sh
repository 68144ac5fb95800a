#!/usr/bin/env bash
# The README's test command. On a fresh machine of this kind it installs what the suite needs
# (OpenSSH server for the loopback deploy tests, qemu for the virtual Pi, Mesa's software Vulkan
# for the GPU path, gcc for the test delegates, PostgreSQL for the results database, the project
# venv), then runs the whole suite.
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
# The software GPU (tests/test_accelerators.py): Mesa's lavapipe, Vulkan on the CPU, from Debian's
# bookworm-backports; bookworm's own 22.3 lacks what Dawn (LiteRT's WebGPU accelerator) requires.
# Pinned as measured; if backports has moved on, its current 25.x is taken and said so.
MESA=25.0.7-2~bpo12+1
if ! dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^2[5-9]\.' \
   || ! dpkg-query -W libvulkan1 >/dev/null 2>&1; then
  src=/etc/apt/sources.list.d/edgebench-bookworm-backports.sources
  [ -f "$src" ] || printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
    'Suites: bookworm-backports' 'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$src"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
      "mesa-vulkan-drivers=$MESA" libvulkan1 >/dev/null 2>&1 \
    || { echo "tests/run.sh: mesa-vulkan-drivers $MESA is gone from bookworm-backports; taking its current version" >&2
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
           mesa-vulkan-drivers libvulkan1 >/dev/null; }
fi
# The test delegates (tests/delegates/*.c) are compiled by the suite.
command -v gcc >/dev/null 2>&1 || { apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; }
# The results database's tests (tests/test_results_db.py) start a PostgreSQL server of their own.
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
# The results site's browser tests (tests/test_publish.py): Debian's Chromium, driven by
# Playwright (pinned in the test extra), which cannot download browsers of its own here.
command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
# labgrid (tests/test_labgrid.py runs a real coordinator and exporter) in its own environment:
# labgrid 26.0.1 needs protobuf >= 5.29.6, the host venv pins 4.25.5.
# Built in the background, beside the project venv's install: pip installs on one core.
LABGRID=.cache/labgrid-26.0.1
labgrid_pid=
if ! cmp -s tests/labgrid-requirements.txt "$LABGRID/requirements.txt"; then
  { rm -rf "$LABGRID" && python3.11 -m venv "$LABGRID" \
      && "$LABGRID/bin/pip" install -q -r tests/labgrid-requirements.txt \
      && cp tests/labgrid-requirements.txt "$LABGRID/requirements.txt"; } &
  labgrid_pid=$!
fi
export EDGEBENCH_LABGRID_BIN="$PWD/$LABGRID/bin"  # missing labgrid then fails its tests
export EDGEBENCH_REQUIRE_EMULATION=1  # missing emulation fails the tests instead of skipping them
export EDGEBENCH_REQUIRE_BROWSER=1  # so does a missing Chromium (docs screenshots, results site)
# --no-compile: pip byte-compiles every file of every package on one core (34 of a fresh
# install's 97 s here); Python compiles the modules the suite imports when it first imports
# them, and keeps them, so the bytecode is written here even where the environment says not to.
unset PYTHONDONTWRITEBYTECODE
[ -x .venv/bin/python ] || python3.11 -m venv .venv
.venv/bin/pip install -q --no-compile -e '.[test]'
if [ -n "$labgrid_pid" ]; then
  wait "$labgrid_pid" || { echo "tests/run.sh: could not install labgrid into $LABGRID" >&2; exit 1; }
fi
# The litert-torch converter's own venv (tests/test_converters.py): ~2.1 GB, made once, pinned;
# checked (7 s) beside the docs build.
.venv/bin/python -m edgebench.host.export.converters.env litert-torch >/dev/null &
converters_pid=$!
# The documentation site (docs/, mkdocs.yml): a broken link, page or anchor fails here, before
# the suite; tests/test_docs.py checks what it holds. Open .cache/site/index.html to read it.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir .cache/site
wait "$converters_pid"
# The tests that assert on a model they train (marked `trained`) run a second time under kernel
# limits that make this CPU compute like an older one (tests/kernels.py): float training differs
# between CPU types, and CI runs on whatever CPU its machine has. EDGEBENCH_KERNELS picks the
# setting (none: skip this pass); exit 5 (nothing marked among the tests asked for) is not a
# failure. One process: these tests train on both cores (on 2 workers the pass took 102 s, in
# one 99 s).
kernels=${EDGEBENCH_KERNELS:-sse41}
kernel_pass=(.venv/bin/python tests/kernels.py "$kernels" -- .venv/bin/python -m pytest -m trained
             -p no:cacheprovider "$@")
kernel_rc() { [ "$1" -eq 0 ] || [ "$1" -eq 5 ] || exit "$1"; }
workers=${EDGEBENCH_TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then  # everything in one process, one pass after the other
  .venv/bin/python -m pytest "$@"
  if [ "$kernels" != none ]; then
    echo "tests/run.sh: the trained-model tests again, as on another CPU ($kernels kernels)"
    rc=0; "${kernel_pass[@]}" || rc=$?; kernel_rc "$rc"
  fi
  exit 0
fi
# Two test processes (pytest-xdist), each test file whole on one of them: many tests wait on
# sshd, qemu, PostgreSQL or a browser rather than compute. The kernel pass runs beside them at
# the lowest priority, on the CPU time they leave idle, and is waited for before the tests marked
# `serial`, which measure time and run last, alone.
kernel_log=$(mktemp)
kernel_pid=
if [ "$kernels" != none ]; then
  nice -n 19 "${kernel_pass[@]}" > "$kernel_log" 2>&1 &
  kernel_pid=$!
fi
rc=0
.venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@" || rc=$?
krc=0
if [ -n "$kernel_pid" ]; then
  wait "$kernel_pid" || krc=$?
  echo "tests/run.sh: the trained-model tests again, as on another CPU ($kernels kernels), run beside the above"
  cat "$kernel_log"
fi
rm -f "$kernel_log"
[ "$rc" -eq 0 ] || exit "$rc"
kernel_rc "$krc"
echo "tests/run.sh: the tests that measure time (marked serial), alone"
rc=0
.venv/bin/python -m pytest --serial-only "$@" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || exit "$rc"
