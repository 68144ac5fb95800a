"""`bench-host emulate build|start|stop|status`: a virtual Raspberry Pi (arm64 Debian under
qemu-user, its own sshd, in a network namespace) to deploy to without a board."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "emulate", help="a virtual arm64 device (qemu-user + sshd in a network namespace)",
        description="Build (once, cached) an arm64 Debian image with Python, numpy, a TFLite "
                    "runtime and OpenSSH, and start it as a device reachable over SSH on an "
                    "address of its own. Needs root, qemu-user-static and binfmt_misc. Timings "
                    "measured on it are for correctness only: qemu is 5-330x slower than this host "
                    "depending on the kernel, so not even ratios between recipes carry over.",
        epilog="examples:\n  sudo bench-host emulate start --image bookworm\n"
               "  bench-host deploy --inventory ~/.cache/edgebench/emulate/inventory.ini \\\n"
               "      --known-hosts ~/.cache/edgebench/emulate/known_hosts --bundle DIR\n"
               "  sudo bench-host emulate stop --name pi-bookworm --purge\n"
               "images: --image help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build (or find in the cache) an image")
    b.add_argument("--image", default="bookworm", help="bookworm (default), bullseye, or help")
    b.add_argument("--rebuild", action="store_true", help="build again even if cached")
    s = sub.add_parser("start", help="start a device (building its image first if needed)")
    s.add_argument("--image", default="bookworm", help="bookworm (default), bullseye, or help")
    s.add_argument("--name", help="device name (default pi-IMAGE)")
    t = sub.add_parser("stop", help="power a device off (processes, namespace, mounts)")
    t.add_argument("--name", action="append", default=[],
                   help="device to stop (repeatable; default: every device)")
    t.add_argument("--purge", action="store_true",
                   help="also delete its disk: the next start is a fresh device, new host key")
    sub.add_parser("status", help="list devices, their addresses and whether they run")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host import emulate

    image = getattr(args, "image", None)
    if image == "help":
        print(emulate.describe_images())
        return 0
    if args.action == "build":
        from edgebench.host.emulate import hostcheck
        hostcheck.require_root("building an emulated image")
        recipe = emulate.get_image(image)
        path = emulate.ensure_image(recipe, log=_log, rebuild=args.rebuild)
        info = emulate.image_info(recipe)
        print(f"{recipe.name}: {path} ({info.get('runtime')} {info.get('runtime_version')}, "
              f"Python {recipe.python})")
        return 0
    if args.action == "start":
        state = emulate.start(image, args.name, log=_log)
        inv, kh = _write_inventory(emulate)
        print(f"{state.name} running: ssh -i {state.client_key} -o UserKnownHostsFile="
              f"{state.known_hosts} {state.user}@{state.dev_addr}")
        print(f"inventory line: {state.inventory_line()}")
        print(f"deploy: bench-host deploy --inventory {inv} --known-hosts {kh} --bundle DIR")
        print("timings on an emulated device are for correctness only")
        return 0
    if args.action == "stop":
        names = args.name or [st.name for st, _ in emulate.status()]
        for name in names:
            was = emulate.stop(name, purge=args.purge)
            print(f"{name}: {'stopped' if was else 'was not running'}"
                  f"{', disk deleted' if args.purge else ''}")
        _write_inventory(emulate)
        return 0
    rows = emulate.status()
    if not rows:
        print("no emulated devices (start one: bench-host emulate start --image bookworm)")
    for st, running in rows:
        print(f"{st.name:<16} {'running' if running else 'stopped':<8} {st.image:<9} "
              f"{st.target:<24} pid {st.pid or '-'}")
    return 0


def _write_inventory(emulate) -> tuple:
    """An Ansible-INI inventory and a known_hosts file of the running devices, in the cache
    folder: (inventory path, known_hosts path)."""
    root = emulate.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    up = [st for st, running in emulate.status() if running]
    inv, kh = root / "inventory.ini", root / "known_hosts"
    inv.write_text("\n".join(["[emulated]"] + [st.inventory_line() for st in up]) + "\n")
    kh.write_text("".join(open(st.known_hosts).read() for st in up))
    return str(inv), str(kh)


def _log(msg: str) -> None:
    print(f"emulate: {msg}", file=sys.stderr, flush=True)
