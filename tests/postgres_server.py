"""A real PostgreSQL server for the tests (Debian's postgresql package, which tests/run.sh
installs): initdb in a temporary folder, password (scram) logins only, listening on 127.0.0.1 on
a free port and on a Unix socket in that folder. PostgreSQL refuses to run as root, so under root
the server runs as the package's `postgres` user."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ports import free_port

USER, PASSWORD = "edgebench", "s3cret-for-tests"


@dataclass
class Server:
    port: int
    folder: Path

    def url(self, password: str = PASSWORD, db: str = "postgres") -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{db}"


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start() -> Server:
    bins = bindir()
    if bins is None:
        raise RuntimeError("PostgreSQL is not installed (tests/run.sh installs Debian's "
                           "postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="edgebench-pg-"))
    os.chmod(folder, 0o755)
    (folder / "pw").write_text(PASSWORD + "\n")
    (folder / "sock").mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
        shutil.chown(folder / "sock", "postgres")
    data = folder / "data"
    subprocess.run(_as_server_user([str(bins / "initdb"), "-D", str(data), "-U", USER,
                                    "--pwfile", str(folder / "pw"), "--auth=scram-sha-256",
                                    "-E", "UTF8", "--no-locale"]),
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder / 'sock'}"
    subprocess.run(_as_server_user([str(bins / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
                                    "-t", "60", "-l", str(folder / "log"), "start"]),
                   check=True, capture_output=True, timeout=120)
    return Server(port=port, folder=folder)


def stop(server: Server) -> None:
    subprocess.run(_as_server_user([str(bindir() / "pg_ctl"), "-D", str(server.folder / "data"),
                                    "-m", "fast", "-w", "stop"]), capture_output=True, timeout=60)
    shutil.rmtree(server.folder, ignore_errors=True)
