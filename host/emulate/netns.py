"""A network namespace joined to this machine by one veth pair on a /30 of our own.

The device side gets one address and no default route, so nothing inside can reach anything but
the host end of its own link; the host end gets the other address, so the host reaches the device
and nothing else through it. Addresses come from link-local 169.254.192.0/19 (never routed
beyond a link by definition), skipping any /30 that overlaps an address or route already here."""
from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import asdict, dataclass

from edgebench.host.emulate.hostcheck import run_quiet
from edgebench.host.errors import UserError

POOL = ipaddress.ip_network("169.254.192.0/19")
PREFIX = 30


@dataclass
class Link:
    netns: str
    host_if: str
    dev_if: str
    host_addr: str
    dev_addr: str

    def to_dict(self) -> dict:
        return asdict(self)


def names_for(device: str) -> tuple:
    """(netns, host veth, device veth); interface names stay within Linux's 15 characters."""
    tag = hashlib.sha1(device.encode()).hexdigest()[:8]
    return f"edgebench-{device}", f"eb{tag}h", f"eb{tag}d"


def _ip_json(*args) -> list:
    out = run_quiet(["ip", "-j", *args]).stdout
    try:
        return json.loads(out or "[]")
    except ValueError:
        return []


def _in_use() -> list:
    nets = []
    for link in _ip_json("-4", "addr"):
        for a in link.get("addr_info", []):
            nets.append(ipaddress.ip_network(f"{a['local']}/{a.get('prefixlen', 32)}",
                                             strict=False))
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst = route.get("dst", "")
        if dst and dst != "default" and dst[0].isdigit():
            nets.append(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))
    return nets


def allocate(device: str, prefer: str = None) -> tuple:
    """(host_addr, dev_addr): `prefer` (the device's previous address) when still free, else the
    first free /30 from a slot derived from the name (stable across restarts and rebuilds)."""
    used = _in_use()
    subnets = list(POOL.subnets(new_prefix=PREFIX))
    start = int(hashlib.sha1(device.encode()).hexdigest(), 16) % len(subnets)
    order = subnets[start:] + subnets[:start]
    if prefer:
        order.insert(0, ipaddress.ip_network(f"{prefer}/{PREFIX}", strict=False))
    for net in order:
        if not any(net.overlaps(u) for u in used):
            host, dev = list(net.hosts())
            return str(host), str(dev)
    raise UserError(f"no free /{PREFIX} left in {POOL} for an emulated device")


def exists(netns: str) -> bool:
    return any(n.get("name") == netns for n in _ip_json("netns", "list"))


def create(device: str, prefer: str = None) -> Link:
    netns, host_if, dev_if = names_for(device)
    if exists(netns):
        destroy(netns, host_if)
    host_addr, dev_addr = allocate(device, prefer)
    link = Link(netns, host_if, dev_if, host_addr, dev_addr)
    proc = run_quiet(["ip", "netns", "add", netns], check=False)
    if proc.returncode != 0:
        raise UserError(f"network namespaces are unavailable here (ip netns add: "
                        f"{proc.stderr.strip()}); they need root and a kernel with "
                        f"CONFIG_NET_NS, and a container must allow CAP_SYS_ADMIN")
    try:
        for argv in (["ip", "link", "add", host_if, "type", "veth", "peer", "name", dev_if],
                     ["ip", "link", "set", dev_if, "netns", netns],
                     ["ip", "addr", "add", f"{host_addr}/{PREFIX}", "dev", host_if],
                     ["ip", "link", "set", host_if, "up"],
                     ["ip", "-n", netns, "addr", "add", f"{dev_addr}/{PREFIX}", "dev", dev_if],
                     ["ip", "-n", netns, "link", "set", dev_if, "up"],
                     ["ip", "-n", netns, "link", "set", "lo", "up"]):
            run_quiet(argv)
    except UserError as exc:
        destroy(netns, host_if)
        raise UserError(f"could not wire the device's network: {exc} (a kernel without veth "
                        f"support needs CONFIG_VETH)") from None
    return link


def pids(netns: str) -> list:
    proc = run_quiet(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def routes(netns: str) -> list:
    """Every IPv4 and IPv6 route inside the namespace (the test checks there is no way out)."""
    return _ip_json("-n", netns, "-4", "route", "show", "table", "all") + \
        _ip_json("-n", netns, "-6", "route", "show", "table", "all")


def destroy(netns: str, host_if: str) -> None:
    """Delete the namespace (which deletes its veth end, and with it the pair)."""
    if exists(netns):
        run_quiet(["ip", "netns", "del", netns], check=False)
    if any(link.get("ifname") == host_if for link in _ip_json("link")):
        run_quiet(["ip", "link", "del", host_if], check=False)
