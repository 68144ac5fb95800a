"""A loopback TCP proxy that fails the way real links fail, for the deploy tests and benchmarks.

    proxy = FaultProxy(upstream_port, reset_after_up=400_000).start()   # RST once 400 kB went up
    proxy.silent_cut()       # stop forwarding both ways on every open connection, sockets kept
    proxy.rate_bps = 2e6     # throttle both directions to ~2 MB/s

Faults, each per connection (change the attributes between connections to change behaviour):
- reset_after_up: once that many bytes went client->server (the upload direction), the
  connection is reset: both sockets are closed with SO_LINGER 0, so each end gets an RST, as when a
  NAT or a Wi-Fi access point drops a flow. For the first `fault_connections` connections (None:
  all of them).
- reset_after_down: the same, counting server->client bytes (a cut during a download).
- silent_after_up: the same trigger as reset_after_up, but a silent cut: nothing more is forwarded in either
  direction and neither socket is closed, so neither end hears of it (a link that vanished).
  silent_cut() does this at once to every open connection.
- rate_bps: a token bucket per direction (a slow link); delay_s: added to every chunk.
Counters: connections, bytes_up / bytes_down (what was forwarded), cuts (resets + silent cuts).
Listens on 127.0.0.1 only; stop() closes everything it holds."""
from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

_CHUNK = 65536


@dataclass
class FaultProxy:
    upstream_port: int
    upstream_host: str = "127.0.0.1"
    reset_after_up: Optional[int] = None
    reset_after_down: Optional[int] = None
    silent_after_up: Optional[int] = None
    fault_connections: Optional[int] = None
    rate_bps: Optional[float] = None
    delay_s: float = 0.0
    port: int = 0
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    cuts: int = 0
    _loop: asyncio.AbstractEventLoop = field(default=None, repr=False)
    _thread: threading.Thread = field(default=None, repr=False)
    _server: object = field(default=None, repr=False)
    _conns: list = field(default_factory=list, repr=False)

    # The names the older tests use (tests/sshd.py's TCPProxy, which this replaces).
    @property
    def cut_after_up(self):
        return self.reset_after_up

    @cut_after_up.setter
    def cut_after_up(self, value):
        self.reset_after_up = value

    @property
    def cut_connections(self):
        return self.fault_connections

    @cut_connections.setter
    def cut_connections(self, value):
        self.fault_connections = value

    def start(self) -> "FaultProxy":
        ready = threading.Event()

        def main():
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
        self._thread = threading.Thread(target=main, daemon=True, name="faultproxy")
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("fault proxy did not start")
        return self

    async def _handle(self, creader, cwriter):
        # A handler task must not end cancelled (at stop()): asyncio's stream callback would log
        # the CancelledError it finds there.
        try:
            await self._serve(creader, cwriter)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, OSError):
            pass

    async def _serve(self, creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection(self.upstream_host,
                                                             self.upstream_port)
        except OSError:
            cwriter.close()
            return
        self.connections += 1
        faulty = self.fault_connections is None or self.connections <= self.fault_connections
        conn = _Conn(cwriter, uwriter,
                     reset_at=self.reset_after_up if faulty else None,
                     silent_at=self.silent_after_up if faulty else None,
                     reset_down_at=self.reset_after_down if faulty else None)
        self._conns.append(conn)
        await asyncio.gather(self._pipe(conn, creader, uwriter, True),
                             self._pipe(conn, ureader, cwriter, False), return_exceptions=True)

    async def _pipe(self, conn, reader, writer, upload: bool):
        bucket = _Bucket()
        try:
            while not conn.dead:
                data = await reader.read(_CHUNK)
                if not data or conn.dead:
                    break
                if conn.silent:
                    await conn.forever.wait()      # a vanished link: hold everything, say nothing
                    return
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.rate_bps:
                    await bucket.take(len(data), self.rate_bps)
                if upload:
                    data = await self._upload_faults(conn, data, writer)
                    if data is None:
                        return
                    self.bytes_up += len(data)
                else:
                    if conn.reset_down_at is not None and conn.down + len(data) > conn.reset_down_at:
                        room = max(conn.reset_down_at - conn.down, 0)
                        writer.write(data[:room])
                        await writer.drain()
                        self.bytes_down += room
                        self.cuts += 1
                        conn.close(reset=True)
                        return
                    conn.down += len(data)
                    self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            if not conn.silent:
                conn.close(reset=False)

    async def _upload_faults(self, conn, data, writer):
        """The bytes to forward, or None once a fault struck (after forwarding up to its mark)."""
        marks = [(m, kind) for m, kind in ((conn.reset_at, "reset"), (conn.silent_at, "silent"))
                 if m is not None]
        for mark, kind in sorted(marks):
            room = mark - conn.up
            if room < len(data):
                head = data[:max(room, 0)]
                if head:
                    writer.write(head)
                    self.bytes_up += len(head)
                    await writer.drain()
                conn.up += len(head)
                self.cuts += 1
                if kind == "reset":
                    conn.close(reset=True)
                else:
                    conn.silent = True
                return None
        conn.up += len(data)
        return data

    def silent_cut(self) -> None:
        """Stop forwarding on every open connection now, closing nothing."""
        def cut():
            for c in self._conns:
                if not c.dead and not c.silent:
                    c.silent = True
                    self.cuts += 1
        self._loop.call_soon_threadsafe(cut)

    def reset_all(self) -> None:
        """Reset every open connection now (RST both ways)."""
        def cut():
            for c in self._conns:
                if not c.dead:
                    c.close(reset=True)
                    self.cuts += 1
        self._loop.call_soon_threadsafe(cut)

    cut_all = reset_all   # the older tests' name

    def stop(self) -> None:
        if not self._loop:
            return

        async def shutdown():
            self._server.close()
            for c in self._conns:
                c.close(reset=False)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            # Let every task finish its cancellation before the loop stops (no "destroyed but
            # pending" task, no unretrieved exception).
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None


class _Conn:
    def __init__(self, cwriter, uwriter, reset_at, silent_at, reset_down_at):
        self.writers = (cwriter, uwriter)
        self.reset_at, self.silent_at, self.reset_down_at = reset_at, silent_at, reset_down_at
        self.up = self.down = 0
        self.silent = False
        self.dead = False
        self.forever = asyncio.Event()   # never set: a silent pipe waits here until stop()

    def close(self, reset: bool) -> None:
        if self.dead:
            return
        self.dead = True
        for w in self.writers:
            sock = w.get_extra_info("socket")
            if reset and sock is not None:
                try:   # linger 0: close() sends an RST instead of a FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            w.transport.abort() if reset else w.close()


class _Bucket:
    """Token bucket: at most rate bytes per second on average, bursts of one chunk."""

    def __init__(self):
        self.t = time.monotonic()
        self.tokens = 0.0

    async def take(self, n: int, rate: float) -> None:
        now = time.monotonic()
        self.tokens = min(self.tokens + (now - self.t) * rate, float(_CHUNK))
        self.t = now
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / rate)
