"""A database from what the user typed: a path or sqlite:///PATH (an embedded file, made on first
use) or postgresql://USER@HOST/DB (driven by psycopg 3). Every failure to reach it is a
DatabaseError: one line that names the database without its password."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from edgebench.host.errors import UserError

DEFAULT_FILE = Path("results") / "edgebench.sqlite"
ENV_VAR = "EDGEBENCH_DB"  # overrides the default for every command


class DatabaseError(UserError):
    """The database cannot be opened, reached or logged into."""


def resolve(url: str | None, results_root: Path | None = None) -> str | None:
    """The database to use: --db, else $EDGEBENCH_DB, else RESULTS_ROOT/edgebench.sqlite (the
    results root of the command, results/ by default). 'none' turns recording off."""
    url = url or os.environ.get(ENV_VAR) or str((results_root or DEFAULT_FILE.parent)
                                                 / DEFAULT_FILE.name)
    return None if url.strip().lower() == "none" else url.strip()


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database (a plain path or sqlite:///PATH), None for a server."""
    if "://" not in url:
        return Path(url).expanduser()
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).expanduser()
    return None


def beside(url: str) -> Path:
    """Where a command that read `url` writes its files by default: the SQLite file's folder;
    for a server, results/ (the default results root of deploy and run: a server names no
    folder of its own)."""
    path = sqlite_file(url)
    return path.parent if path is not None else DEFAULT_FILE.parent


def must_exist(url: str) -> None:
    """A command that only reads refuses a SQLite file that is not there rather than making an
    empty one (and its folder) wherever the user stands."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise DatabaseError(f"no results database at {path}: give --db FILE|URL or set "
                            f"${ENV_VAR}")


def _sqlalchemy_url(url: str) -> str:
    if "://" not in url:
        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"  # psycopg 3; SQLAlchemy's default is psycopg2
    return url


def safe(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(_sqlalchemy_url(url) if "://" in url else f"sqlite:///{url}") \
            .render_as_string(hide_password=True).replace("+psycopg", "")
    except Exception:
        return "the database"


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def open_db(url: str):
    """A SQLAlchemy engine with the tables created; DatabaseError when it cannot be used."""
    try:
        import sqlalchemy as sa
        from sqlalchemy import exc as sa_exc
    except ModuleNotFoundError:
        raise DatabaseError("SQLAlchemy is not installed (pip install -e .)") from None
    from edgebench.host.results_db import schema

    try:
        engine = sa.create_engine(_sqlalchemy_url(url), future=True,
                                  connect_args=_connect_args(url))
        schema.metadata.create_all(engine)
        with engine.begin() as conn:
            found = conn.execute(sa.select(schema.meta.c.value).where(
                schema.meta.c.key == "schema_version")).scalar()
            if found is None:
                conn.execute(schema.meta.insert().values(key="schema_version",
                                                         value=str(schema.SCHEMA_VERSION)))
            elif int(found) > schema.SCHEMA_VERSION:
                raise DatabaseError(f"{safe(url)}: database schema {found} is newer than this "
                                    f"edgebench writes ({schema.SCHEMA_VERSION})")
    except ModuleNotFoundError as e:
        raise DatabaseError(f"{safe(url)}: driver {e.name} is not installed (for PostgreSQL: "
                            f"pip install -e '.[postgres]')") from None
    except (sa_exc.SQLAlchemyError, OSError) as e:
        raise DatabaseError(f"{safe(url)}: {_first_line(e)}") from None
    return engine


def _connect_args(url: str) -> dict:
    if url.startswith(("postgresql://", "postgres://", "postgresql+")):
        return {"connect_timeout": 10}  # a server that is down must not hang a run
    return {}


@contextmanager
def guarded(url: str):
    """A database that fails after it was opened (the server went away, a lock timed out) is a
    one-line DatabaseError too, never a traceback."""
    from sqlalchemy import exc as sa_exc

    try:
        yield
    except sa_exc.SQLAlchemyError as e:
        raise DatabaseError(f"{safe(url)}: {_first_line(e)}") from None


@contextmanager
def opened(db_arg: str | None, purpose: str, results_root: Path | None = None,
           reads: bool = False):
    """(engine, url) of the database --db names (else the default of `results_root`), for a
    command that cannot work without one; `reads`: it must already exist. Every failure inside
    is a one-line DatabaseError, and the engine is closed after."""
    url = resolve(db_arg, results_root)
    if url is None:
        raise UserError(f"--db none: {purpose} needs a database")
    if reads:
        must_exist(url)
    engine = open_db(url)
    try:
        with guarded(url):
            yield engine, url
    finally:
        engine.dispose()
