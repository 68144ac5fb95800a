"""Talking to a labgrid coordinator through labgrid's own client program, `labgrid-client`.

Why the program and not labgrid's Python API: labgrid 26.0.1 needs protobuf >= 5.29.6 while the
host pins protobuf 4.25.5 (TensorFlow 2.19 / onnx2tf), so labgrid cannot be imported here; a lab
that runs labgrid has `labgrid-client` installed anyway, its commands (`show`, `places`,
`acquire`, `reserve`, `wait`, `power`, `release`) are labgrid's documented interface and keep
working across labgrid versions, and a user can repeat by hand exactly what edgebench did. The
price, measured in benchmarks/labgrid_overhead.py: every call starts a Python that imports
labgrid (~1-2 s), so a place costs a few seconds of acquire and release per deploy.

Output is parsed from `show` / `places -v`: the place's tags and holder are plain lines, and each
resource's parameters are a Python literal (labgrid prints them with pprint), read with
ast.literal_eval, never evaluated."""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Optional

from edgebench.host.errors import UserError

LABGRID_VERSION = "26.0.1"
INSTALL_HINT = (f"install labgrid in its own environment (it needs protobuf >= 5.29.6, the host "
                f"pins 4.25.5): python3 -m venv ~/labgrid && ~/labgrid/bin/pip install "
                f"labgrid=={LABGRID_VERSION}, then put ~/labgrid/bin on PATH or pass "
                f"--labgrid-client ~/labgrid/bin/labgrid-client")
DEFAULT_COORDINATOR = "127.0.0.1:20408"   # labgrid-client's own default
CALL_TIMEOUT_S = 60.0


class LabgridError(UserError):
    """labgrid-client refused or failed; the message is its own one-line reason."""


@dataclass
class Resource:
    name: str            # the name the place sees (after a match's rename)
    cls: str             # NetworkService, NetworkPowerPort, ...
    path: str            # exporter/group/cls/name
    params: dict = field(default_factory=dict)
    avail: bool = True


@dataclass
class Place:
    name: str
    tags: dict = field(default_factory=dict)
    matches: list = field(default_factory=list)
    acquired: Optional[str] = None          # "host/user" of the holder, None when free
    reservation: Optional[str] = None
    resources: list = field(default_factory=list)   # [Resource], matching or acquired
    orphans: list = field(default_factory=list)     # acquired resources whose exporter left

    def resource(self, cls: str) -> Optional[Resource]:
        return next((r for r in self.resources if r.cls == cls), None)

    def tags_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))


def find_client(explicit: Optional[str] = None) -> str:
    """--labgrid-client PATH, else `labgrid-client` on PATH, else a one-line install hint."""
    if explicit:
        path = os.path.expanduser(explicit)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise UserError(f"--labgrid-client {explicit}: not an executable file; {INSTALL_HINT}")
        return path
    found = shutil.which("labgrid-client")
    if not found:
        raise UserError(f"labgrid targets need labgrid's client program, and labgrid-client is "
                        f"not on PATH; {INSTALL_HINT}")
    return found


class LabgridClient:
    """One coordinator, reached through one labgrid-client program."""

    def __init__(self, program: str, coordinator: str, env: Optional[dict] = None):
        self.program, self.coordinator = program, coordinator
        self.env = dict(os.environ if env is None else env)
        self.env["LG_COORDINATOR"] = coordinator
        for key in ("LG_PLACE", "LG_ENV", "LG_TOKEN", "LG_STATE"):
            self.env.pop(key, None)   # a user's shell settings must not redirect our calls

    def identity(self) -> str:
        """host/user as the coordinator records a holder (LG_HOSTNAME/LG_USERNAME override)."""
        import getpass
        import socket
        return (f"{self.env.get('LG_HOSTNAME') or socket.gethostname()}/"
                f"{self.env.get('LG_USERNAME') or getpass.getuser()}")

    def call(self, *argv: str, place: Optional[str] = None,
             timeout: float = CALL_TIMEOUT_S) -> str:
        cmd = [self.program] + (["-p", place] if place else []) + list(argv)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                                 timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise LabgridError(f"labgrid-client {' '.join(argv)} got no answer from the "
                               f"coordinator {self.coordinator} in {timeout:.0f} s") from None
        except OSError as exc:
            raise UserError(f"cannot run {self.program}: {exc}; {INSTALL_HINT}") from None
        if res.returncode != 0:
            raise LabgridError(self._reason(res.stderr, res.stdout))
        return res.stdout

    def _reason(self, stderr: str, stdout: str) -> str:
        text = stderr + "\n" + stdout
        if "Could not connect to coordinator" in text or "coordinator is unavailable" in text:
            return (f"labgrid coordinator {self.coordinator} is not answering (is "
                    f"labgrid-coordinator running there? set LG_COORDINATOR or --coordinator)")
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln]
        line = (errors or lines or ["labgrid-client failed without a message"])[-1]
        return re.sub(r"^labgrid-client: (Error: )?", "", line)

    # --- queries -------------------------------------------------------------------------
    def show(self, place: str) -> Place:
        return parse_show(self.call("show", place=place))[0]

    def places(self) -> list:
        out = self.call("-v", "places")
        return parse_show(out) if out.strip() else []

    # --- holding ---------------------------------------------------------------------------
    def acquire(self, place: str) -> None:
        self.call("acquire", place=place)

    def release(self, place: str, kick: bool = False) -> None:
        self.call("release", *(["--kick"] if kick else []), place=place)

    def reserve(self, place: str) -> str:
        """A reservation for exactly this place (the `name` filter); returns its token."""
        out = self.call("reserve", "--shell", f"name={place}")
        m = re.search(r"LG_TOKEN=(\S+)", out)
        if not m:
            raise LabgridError(f"labgrid-client reserve printed no token: {out.strip()!r}")
        return m.group(1)

    def wait(self, token: str, timeout: float) -> None:
        self.call("wait", token, timeout=timeout)

    def acquire_reserved(self, token: str) -> None:
        self.call("acquire", place=f"+{token}")

    def cancel_reservation(self, token: str) -> None:
        self.call("cancel-reservation", token)

    def power_cycle(self, place: str, delay_s: float) -> None:
        self.call("power", "cycle", "-t", f"{delay_s:g}", place=place)


_PLACE = re.compile(r"^Place '(?P<name>[^']+)':$")
_RES = re.compile(r"^(?:Matching|Acquired) resource '(?P<name>[^']+)' "
                  r"\((?P<path>[^)]+)\):$")
_ORPHAN = re.compile(r"^Orphaned resource '[^']+' \((?P<path>[^)]+)\)$")


def parse_show(text: str) -> list:
    """Places in the output of `show` or `-v places`, with their resources where listed."""
    places, place, res_head, res_lines = [], None, None, []

    def flush_resource():
        nonlocal res_head, res_lines
        if res_head and place is not None:
            try:
                params = ast.literal_eval("\n".join(res_lines).strip() or "{}")
            except (ValueError, SyntaxError):
                params = {}
            path = res_head["path"]
            place.resources.append(Resource(
                name=res_head["name"], cls=params.get("cls") or path.split("/")[2],
                path=path, params=params.get("params", {}), avail=bool(params.get("avail", True))))
        res_head, res_lines = None, []

    section = None
    for line in text.splitlines():
        m = _PLACE.match(line)
        if m:
            flush_resource()
            place = Place(name=m["name"])
            places.append(place)
            section = None
            continue
        m = _RES.match(line)
        if m:
            flush_resource()
            res_head = m.groupdict()
            continue
        if res_head is not None and line.startswith(" "):
            res_lines.append(line)
            continue
        flush_resource()
        m = _ORPHAN.match(line)
        if m and place is not None:
            place.orphans.append(m["path"])
            continue
        if place is None:
            continue
        stripped = line.strip()
        key, _, value = stripped.partition(": ")
        if line.startswith("  ") and not line.startswith("    "):
            section = None
            if stripped.startswith("tags:"):
                place.tags = dict(kv.split("=", 1) for kv in value.split(", ") if "=" in kv)
            elif stripped == "matches:":
                section = "matches"
            elif stripped.startswith("acquired:"):
                place.acquired = None if value in ("", "None") else value
            elif stripped.startswith("reservation:"):
                place.reservation = value or None
        elif section == "matches" and stripped:
            place.matches.append(stripped)
    flush_resource()
    if not places:
        raise LabgridError(f"could not read labgrid-client's answer: {text.strip()[:200]!r}")
    return places


def parse_tags(text: str) -> dict:
    """`board=pi5,lab=desk` -> {"board": "pi5", "lab": "desk"}."""
    tags = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise UserError(f"--labgrid-tags {text!r}: expected KEY=VALUE[,KEY=VALUE...]")
        tags[key] = value
    if not tags:
        raise UserError("--labgrid-tags names no tag")
    return tags
