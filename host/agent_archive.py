"""agent.pyz: the device agent (the edgebench.device package) as one zipapp, built reproducibly.

The same sources give the same bytes: entries sorted by name, every timestamp 1980-01-01, fixed
permissions, stored uncompressed (no dependence on the zlib build), no bytecode. A bundle's
content id covers agent.pyz, so this is what lets a re-built bundle of unchanged models resume on
the device. `python3 agent.pyz ...` needs Python 3.8+, numpy and a TFLite runtime only."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import edgebench.device as device_package
from edgebench.device.schema import AGENT_ARCHIVE

SHEBANG = b"#!/usr/bin/env python3\n"
EPOCH = (1980, 1, 1, 0, 0, 0)
PACKAGE = "edgebench/device/"
# The archive's own `edgebench` is a regular package, so nothing installed beside the archive can
# shadow or join it; its entry point is device/__main__.py, also at the top.
EDGEBENCH_INIT = b'"""edgebench, as much of it as the device agent needs."""\n'


def modules() -> list:
    """Every module of the device package, subpackages included, as paths inside it."""
    folder = Path(device_package.__file__).parent
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.py")
                  if "__pycache__" not in p.parts)


def sources() -> dict:
    """archive name -> bytes of every file that goes into agent.pyz."""
    folder = Path(device_package.__file__).parent
    files = {PACKAGE + rel: (folder / rel).read_bytes() for rel in modules()}
    files["edgebench/__init__.py"] = EDGEBENCH_INIT
    files["__main__.py"] = files[PACKAGE + "__main__.py"]
    return files


def archive_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in sorted(sources().items()):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the host
            zf.writestr(info, data)
    return SHEBANG + buffer.getvalue()


def write_archive(dest: Path) -> Path:
    """agent.pyz at `dest` (a file path, or a folder to put it in)."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / AGENT_ARCHIVE
    dest.write_bytes(archive_bytes())
    return dest


def device_script(name: str) -> str:
    """The source of one stdlib-only script of device/remote/ (lease, agent_wrapper,
    upload_store, doctor_facts, accelerator_probe), for `python3 -c SOURCE ...` on a device that
    has nothing of ours yet: these run before agent.pyz is uploaded, or without it."""
    return (Path(device_package.__file__).parent / "remote" / f"{name}.py").read_text()
