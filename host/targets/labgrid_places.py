"""Holding a labgrid place for one run: reserve and acquire it (waiting when asked), read its
NetworkService into an SSH TargetSpec, power-cycle it when asked, release it when done.

A run killed outright (SIGKILL, a lost laptop) cannot release anything, so every acquisition is
recorded on this machine (`~/.cache/edgebench/labgrid/`, pid and start time of the run). The next
run that finds the place acquired under our own labgrid identity (host/user) reads the record:
its run has died -> the place is released and taken, saying so; its run is alive -> "held by
another edgebench run"; no record -> the place was acquired by hand, and the message says how to
release it. Places held by anyone else are never touched: the error names the holder, or with
--wait the run queues a labgrid reservation and takes the place when the coordinator allocates it.
"""
from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from edgebench.host.errors import UserError
from edgebench.host.targets.base import TargetSpec
from edgebench.host.targets.labgrid_client import (
    DEFAULT_COORDINATOR, LabgridClient, LabgridError, Place, find_client,
)

POWER_RESOURCES = ("NetworkPowerPort", "PDUDaemonPort", "NetworkUSBPowerPort",
                   "NetworkSiSPMPowerPort", "TasmotaPowerPort", "NetworkYKUSHPowerPort",
                   "NetworkSysfsGPIO")


@dataclass
class LabgridOptions:
    """The labgrid arguments of a run (--coordinator, --labgrid-tags, --wait, ...)."""
    coordinator: Optional[str] = None    # HOST:PORT; default LG_COORDINATOR, then labgrid's own
    tags: dict = field(default_factory=dict)
    wait_s: float = 0.0
    power_cycle: bool = False
    power_delay_s: float = 2.0
    boot_timeout_s: float = 180.0
    client_program: Optional[str] = None
    records_dir: Optional[str] = None   # default ~/.cache/edgebench/labgrid
    env: Optional[dict] = None          # environment for labgrid-client (tests set LG_USERNAME)

    def address(self) -> str:
        env = os.environ if self.env is None else self.env
        return self.coordinator or env.get("LG_COORDINATOR") or DEFAULT_COORDINATOR

    def client(self) -> LabgridClient:
        return LabgridClient(find_client(self.client_program), self.address(), self.env)


def select_places(client: LabgridClient, names: list, tags: dict) -> list:
    """The places of the run (Place, as the coordinator lists them, without resources): those
    named (labgrid:NAME), then every place whose tags include all of `tags`, each once."""
    chosen = list(dict.fromkeys(names))
    everything = client.places()   # also the first sign of a coordinator that is not there
    known = {p.name for p in everything}
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise UserError(f"no place {', '.join(unknown)} on labgrid coordinator "
                        f"{client.coordinator} (places: {', '.join(sorted(known)) or 'none'})")
    if tags:
        found = [p.name for p in everything if all(p.tags.get(k) == v for k, v in tags.items())]
        if not found:
            want = ",".join(f"{k}={v}" for k, v in tags.items())
            known = "; ".join(f"{p.name} ({p.tags_text() or 'no tags'})" for p in everything)
            raise UserError(f"no place on labgrid coordinator {client.coordinator} has the tags "
                            f"{want} (places: {known or 'none'})")
        chosen += [n for n in found if n not in chosen]
    by_name = {p.name: p for p in everything}
    return [by_name[n] for n in chosen]


def _records_dir(options: LabgridOptions) -> Path:
    if options.records_dir:
        return Path(options.records_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "edgebench" / "labgrid"


def _proc_start(pid: int) -> Optional[str]:
    """The kernel's start time of a process (field 22 of /proc/PID/stat): a pid plus this names
    one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class PlaceHold:
    """`with PlaceHold(client, "pi-a", options) as hold:` hold.spec is the place's SSH target;
    the place is released on leaving, on an exception and on release() from another thread."""

    def __init__(self, client: LabgridClient, name: str, options: LabgridOptions,
                 note: Optional[Callable[[str], None]] = None, listed: Optional[Place] = None):
        self.client, self.name, self.options = client, name, options
        self._listed = listed   # the coordinator's listing of it, if the caller has one
        self.note = note or (lambda text: None)
        self.place: Optional[Place] = None
        self.spec: Optional[TargetSpec] = None
        self.notes: list = []
        self.acquire_s = 0.0
        self._token: Optional[str] = None
        self._held = False
        self._lock = threading.Lock()
        self._abandoned = False
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{client.coordinator}__{name}")
        self._record = _records_dir(options) / f"{safe}.json"

    # --- taking the place ------------------------------------------------------------------
    def __enter__(self) -> "PlaceHold":
        start = time.monotonic()
        try:
            self._take()
            self.acquire_s = time.monotonic() - start
            self.place = self.client.show(self.name)
            self._check_available(self.place)
            self.spec = self._ssh_spec(self.place)
            if self.options.power_cycle:
                self._power_cycle()
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _say(self, text: str) -> None:
        self.notes.append(text)
        self.note(text)

    def _take(self) -> None:
        # Every labgrid-client call costs seconds (it imports labgrid), so a free place is
        # taken from the listing at once; acquire itself refuses a place without resources.
        place = self._listed or self.client.show(self.name)
        if place.acquired:
            self._holder(place)
            place = self.client.show(self.name)
        try:
            self._acquire(place)
        except LabgridError as exc:
            if "no matching remote resource" in str(exc):
                self._check_available(self.client.show(self.name))
                raise
            if "already acquired" not in str(exc) and "not reserved for" not in str(exc):
                raise
            # Taken by someone between our look and our acquire: say who, or queue for it.
            self._holder(self.client.show(self.name), str(exc))
            self._acquire(self.client.show(self.name))

    def _acquire(self, place: Place) -> None:
        if place.acquired and self.options.wait_s > 0:
            return self._wait_for(place)
        with self._lock:
            if self._abandoned:
                raise UserError(f"place {self.name}: run interrupted before it was acquired")
            self.client.acquire(self.name)
            self._held = True
            self._write_record()

    def _wait_for(self, place: Place) -> None:
        """Queue a reservation for this place and acquire it once the coordinator allocates it
        to us (when its holder releases it), within --wait seconds."""
        self._say(f"place {self.name} is acquired by {place.acquired}; waiting up to "
                  f"{self.options.wait_s:g} s")
        self._token = self.client.reserve(self.name)
        try:
            self.client.wait(self._token, timeout=self.options.wait_s)
        except LabgridError:
            now = self.client.show(self.name)
            raise UserError(f"place {self.name} is still acquired by {now.acquired or 'someone'} "
                            f"after waiting {self.options.wait_s:g} s (--wait)") from None
        with self._lock:
            if self._abandoned:
                raise UserError(f"place {self.name}: run interrupted before it was acquired")
            self.client.acquire_reserved(self._token)
            self._held = True
            self._write_record()

    def _check_available(self, place: Place) -> None:
        missing = not place.resources or any(not r.avail for r in place.resources) or place.orphans
        if missing:
            gone = [r.path for r in place.resources if not r.avail] + place.orphans
            raise UserError(f"place {self.name} is unavailable: "
                            + (f"resources {', '.join(gone)} are not available"
                               if gone else f"no exporter offers its resources (matches "
                                            f"{', '.join(place.matches) or 'none'}; is its "
                                            f"labgrid-exporter running?)"))

    def _holder(self, place: Place, why: str = "") -> None:
        """A place that is acquired: ours from a dead run (released here), or someone else's
        (an error naming them, unless --wait)."""
        if not place.acquired:
            return
        if place.acquired == self.client.identity():
            record = self._read_record()
            if record and not self._alive(record):
                self.client.release(self.name)
                self._forget()
                self._say(f"released place {self.name}, left acquired by an edgebench run that "
                          f"died (pid {record.get('pid')}, acquired {record.get('time')})")
                return
            if record:
                raise UserError(f"place {self.name} is held by another edgebench run on this "
                                f"machine (pid {record.get('pid')}, since {record.get('time')})")
            raise UserError(f"place {self.name} is acquired by you ({place.acquired}) outside "
                            f"this run; if nothing uses it, release it with: labgrid-client -x "
                            f"{self.client.coordinator} -p {self.name} release")
        if self.options.wait_s > 0:
            return
        user = place.acquired.split("/")[-1]
        raise UserError(f"place {self.name} is acquired by {place.acquired}; wait for it with "
                        f"--wait SECONDS, or ask {user} to release it (labgrid-client -p "
                        f"{self.name} release)")

    # --- what the place offers -------------------------------------------------------------
    def _ssh_spec(self, place: Place) -> TargetSpec:
        svc = place.resource("NetworkService")
        if svc is None:
            have = ", ".join(sorted({r.cls for r in place.resources})) or "none"
            raise UserError(f"place {self.name} has no NetworkService resource (it has: {have}); "
                            f"export one with the board's address and user (README: Board farms)")
        params = svc.params
        if not params.get("address"):
            raise UserError(f"place {self.name}: its NetworkService has no address")
        return TargetSpec(name=self.name, kind="ssh", host=str(params["address"]).strip("[]"),
                          user=params.get("username") or None,
                          port=int(params.get("port") or 22))

    def power_resource(self) -> Optional[str]:
        found = [r for r in (self.place.resources if self.place else [])
                 if r.cls in POWER_RESOURCES]
        return found[0].cls if found else None

    def _power_cycle(self) -> None:
        if not self.power_resource():
            have = ", ".join(sorted({r.cls for r in self.place.resources})) or "none"
            raise UserError(f"place {self.name} has no power resource to cycle (it has: {have}); "
                            f"export a NetworkPowerPort (or another labgrid power resource) for "
                            f"it, or run without --power-cycle")
        start = time.monotonic()
        self.client.power_cycle(self.name, self.options.power_delay_s)
        self._say(f"power-cycled place {self.name}")
        wait_for_ssh(self.spec.host, self.spec.port or 22, self.options.boot_timeout_s,
                     self.name)
        self._say(f"{self.name} answered SSH {time.monotonic() - start:.1f} s after the "
                  f"power cycle")

    # --- letting go --------------------------------------------------------------------------
    def release(self) -> None:
        """Release the place (and cancel our reservation); safe to call twice and from another
        thread (Ctrl-C); a place not yet acquired will not be acquired afterwards."""
        with self._lock:
            self._abandoned = True
            held, self._held = self._held, False
            token, self._token = self._token, None
        if held:
            try:
                self.client.release(self.name)
                self._forget()
                self._say(f"released place {self.name}")
            except UserError as exc:
                self._say(f"could not release place {self.name}: {exc}; release it with: "
                          f"labgrid-client -x {self.client.coordinator} -p {self.name} release")
        if token:
            try:
                self.client.cancel_reservation(token)
            except UserError:
                pass   # an unused reservation expires on the coordinator by itself

    # --- the record of who holds what ------------------------------------------------------
    def _write_record(self) -> None:
        self._record.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        data = {"place": self.name, "coordinator": self.client.coordinator, "pid": pid,
                "start": _proc_start(pid), "identity": self.client.identity(),
                "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())}
        tmp = self._record.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._record)

    def _read_record(self) -> Optional[dict]:
        try:
            return json.loads(self._record.read_text())
        except (OSError, ValueError):
            return None

    def _forget(self) -> None:
        try:
            self._record.unlink()
        except OSError:
            pass

    @staticmethod
    def _alive(record: dict) -> bool:
        pid = record.get("pid")
        return isinstance(pid, int) and _proc_start(pid) is not None \
            and _proc_start(pid) == record.get("start")


def wait_for_ssh(host: str, port: int, timeout_s: float, name: str) -> None:
    """Until the board's sshd sends its banner (it is booting after a power cycle)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                s.settimeout(3)
                if s.recv(4).startswith(b"SSH-"):
                    return
                last = "not an SSH server"
        except OSError as exc:
            last = exc.strerror or str(exc)
        time.sleep(1.0)
    raise UserError(f"place {name}: SSH at {host}:{port} did not answer within {timeout_s:g} s "
                    f"of the power cycle ({last}); raise --boot-timeout for slow boards")


def place_info(hold: PlaceHold) -> dict:
    """What results/<run>/<place>/place.json records: the report's place and tag columns."""
    place = hold.place
    return {"place": hold.name, "tags": dict(place.tags) if place else {},
            "coordinator": hold.client.coordinator,
            "resources": {r.cls: {k: v for k, v in r.params.items() if k != "extra"}
                          for r in (place.resources if place else [])}}
