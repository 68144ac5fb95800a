"""A real labgrid board farm on 127.0.0.1 for the tests: labgrid-coordinator, labgrid-exporters
whose places point their NetworkService at loopback sshds, and a power switch we control (an HTTP
relay speaking labgrid's `rest` NetworkPowerPort model: GET/PUT of '0'/'1' on
/relay/<index>/value) that records every switch.

labgrid runs from its own environment (tests/run.sh builds .cache/labgrid-26.0.1 from
tests/labgrid-requirements.txt; EDGEBENCH_LABGRID_BIN points at its bin/). Every process is
started here and stopped by its PID."""
from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ports import free_port  # noqa: F401  (test_labgrid imports it from here)

import pytest

ROOT = Path(__file__).resolve().parents[1]


def labgrid_bin() -> Path:
    path = Path(os.environ.get("EDGEBENCH_LABGRID_BIN") or ROOT / ".cache/labgrid-26.0.1/bin")
    if not (path / "labgrid-client").exists():
        msg = (f"labgrid is not installed at {path} (tests/run.sh builds it from "
               f"tests/labgrid-requirements.txt)")
        if os.environ.get("EDGEBENCH_LABGRID_BIN"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _stop(proc: Optional[subprocess.Popen], sig=signal.SIGTERM) -> None:
    if proc and proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


class Relay:
    """A power switch on loopback: labgrid's `rest` model; `switches` lists (path, '0'|'1')."""

    def __init__(self):
        self.switches: list = []
        self.state: dict = {}
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self._answer(relay.state.get(self.path, "1").encode())

            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                relay.state[self.path] = body
                relay.switches.append((self.path, body))
                self._answer(b"")

            def _answer(self, body: bytes):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/relay/{{index}}/value"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Farm:
    bin: Path
    work: Path
    address: str
    coordinator: Optional[subprocess.Popen] = None
    exporters: dict = field(default_factory=dict)

    @property
    def client(self) -> str:
        return str(self.bin / "labgrid-client")

    def env(self, user: Optional[str] = None) -> dict:
        env = dict(os.environ, LG_COORDINATOR=self.address)
        if user:
            env["LG_USERNAME"] = user
        return env

    def lg(self, *argv: str, place: Optional[str] = None, user: Optional[str] = None,
           check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self.client] + (["-p", place] if place else []) + list(argv)
        res = subprocess.run(cmd, capture_output=True, text=True, env=self.env(user), timeout=60)
        if check and res.returncode:
            raise RuntimeError(f"{' '.join(argv)}: {res.stderr}")
        return res

    def start_coordinator(self) -> None:
        host, port = self.address.split(":")
        (self.work / "coordinator").mkdir(exist_ok=True)
        self.coordinator = subprocess.Popen(
            [str(self.bin / "labgrid-coordinator"), "-l", self.address],
            cwd=self.work / "coordinator", stdout=open(self.work / "coordinator.log", "ab"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=0.5).close()
                return
            except OSError:
                if self.coordinator.poll() is not None:
                    raise RuntimeError((self.work / "coordinator.log").read_text())
                time.sleep(0.1)
        raise RuntimeError("labgrid-coordinator did not listen within 30 s")

    def start_exporter(self, name: str, groups: dict) -> None:
        """groups: {group: {ResourceClass: {params}}} -> one exporter named `name`; returns
        once the coordinator lists its resources."""
        lines = []
        for group, resources in groups.items():
            lines.append(f"{group}:")
            for cls, params in resources.items():
                lines.append(f"  {cls}:")
                lines += [f"    {k}: {v!r}" if isinstance(v, str) else f"    {k}: {v}"
                          for k, v in params.items()]
        cfg = self.work / f"exporter-{name}.yaml"
        cfg.write_text("\n".join(lines) + "\n")
        self.exporters[name] = subprocess.Popen(
            [str(self.bin / "labgrid-exporter"), "-c", self.address, "-n", name, "--hostname",
             "127.0.0.1", str(cfg)], stdout=open(self.work / f"exporter-{name}.log", "ab"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = self.lg("resources", check=False).stdout
            if all(f"{name}/{g}/" in listed for g in groups):
                return
            if self.exporters[name].poll() is not None:
                raise RuntimeError((self.work / f"exporter-{name}.log").read_text())
            time.sleep(0.5)
        raise RuntimeError(f"exporter {name} did not register within 60 s")

    def stop_exporter(self, name: str) -> None:
        _stop(self.exporters.pop(name))

    def add_place(self, name: str, match: str, tags: dict) -> None:
        self.lg("create", place=name)
        self.lg("add-match", match, place=name)
        if tags:
            self.lg("set-tags", *(f"{k}={v}" for k, v in tags.items()), place=name)

    def holder(self, place: str) -> Optional[str]:
        for line in self.lg("show", place=place).stdout.splitlines():
            if line.strip().startswith("acquired:"):
                value = line.split(":", 1)[1].strip()
                return None if value == "None" else value
        return None

    def stop(self) -> None:
        for name in list(self.exporters):
            self.stop_exporter(name)
        _stop(self.coordinator)


def start_farm(work: Path) -> Farm:
    farm = Farm(bin=labgrid_bin(), work=work, address=f"127.0.0.1:{free_port()}")
    farm.start_coordinator()
    return farm
