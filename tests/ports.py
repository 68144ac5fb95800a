"""Loopback ports for the servers the suite starts (sshd, PostgreSQL, labgrid's coordinator).

A port found free by binding port 0 is free only until it is released: under pytest-xdist another
worker's bind(0), or any outgoing connection, can take it before the server binds it. So each
test process draws from its own block below Linux's ephemeral range (32768-60999 by default),
where the kernel never hands out ports on its own, and checks each one with a bind before use.
"""
from __future__ import annotations

import itertools
import os
import socket

BASE, BLOCK = 20000, 1000   # worker k (xdist's gwK; the controller or a plain run is 0) owns
_BLOCKS = 12                # BASE + k*BLOCK ..; 12 blocks end at 32000, below the ephemeral range


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    return int(name[2:]) + 1 if name.startswith("gw") and name[2:].isdigit() else 0


_next = itertools.count()


def free_port() -> int:
    """A loopback TCP port no other test process of this run will be given, free right now."""
    block = _worker_index() % _BLOCKS
    for _ in range(BLOCK):
        port = BASE + block * BLOCK + next(_next) % BLOCK
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # held by something outside the suite, or still in use here
            return port
    raise RuntimeError(f"no free loopback port in {BASE + block * BLOCK}..+{BLOCK}")
