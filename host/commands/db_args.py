"""--db, shared by every command that writes to or reads from the results database, and the
results root a folder belongs to (whose edgebench.sqlite is the default database)."""
from __future__ import annotations

from pathlib import Path

DB_FILE = "edgebench.sqlite"
# A run folder (results/<run-id>/) holds these besides its targets' folders.
_RUN_MARKS = ("host.log", "run.json", "profile.json", "bundle")


def add_db_arg(parser, writes: bool = True) -> None:
    what = ("also record the results in this database" if writes else
            "the results database to read")
    parser.add_argument(
        "--db", metavar="URL",
        help=f"{what}: a SQLite file path (default RESULTS/edgebench.sqlite, or $EDGEBENCH_DB), "
             f"postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (pip install -e '.[postgres]')"
             + (", or 'none' to record nothing" if writes else ""))


def results_root_of(folder) -> Path:
    """The results root `folder` belongs to: a target folder is <root>/<run-id>/<target>/, a run
    folder <root>/<run-id>/, anything else a root itself. An edgebench.sqlite already in the
    folder or one of its two parents wins over that guess (results copied by hand)."""
    folder = Path(folder).resolve()
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / DB_FILE).is_file():
            return candidate
    if (folder / "results.csv").is_file():
        return folder.parent.parent
    if any((folder / m).exists() for m in _RUN_MARKS) or any(folder.glob("*/results.csv")):
        return folder.parent
    return folder


def record_results(args, paths, results_root=None) -> None:
    """After a command's files are written: import them into the database, or say in one line
    why not (the command's exit status does not change). Without `results_root`, each folder
    goes to the database of its own results root."""
    from edgebench.host.results_db.connect import resolve
    from edgebench.host.results_db.record import record

    by_url: dict = {}
    for path in paths:
        url = resolve(args.db, results_root if results_root is not None
                      else results_root_of(path))
        by_url.setdefault(url, []).append(path)
    for url, group in by_url.items():
        record(group, url, quiet=getattr(args, "quiet", False))


def report_links(args, results_root=None):
    """A function of the reported folders giving the report's blocks on the previous run of the
    same models (nothing without a database or an earlier run)."""
    from edgebench.host.results_db.connect import resolve

    url = resolve(args.db, results_root)

    def links(folders) -> list:
        from edgebench.host.results_db.link import previous_run_blocks

        return previous_run_blocks(url, folders if isinstance(folders, list) else [folders])
    return links
