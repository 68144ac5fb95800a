"""--db, shared by every command that writes to or reads from the results database."""
from __future__ import annotations


def add_db_arg(parser, writes: bool = True) -> None:
    what = ("also record the results in this database" if writes else
            "the results database to read")
    parser.add_argument(
        "--db", metavar="URL",
        help=f"{what}: a SQLite file path (default RESULTS/edgebench.sqlite, or $EDGEBENCH_DB), "
             f"postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (pip install -e '.[postgres]')"
             + (", or 'none' to record nothing" if writes else ""))


def record_results(args, paths, results_root=None) -> None:
    """After a command's files are written: import them into the database, or say in one line
    why not (the command's exit status does not change)."""
    from edgebench.host.results_db.connect import resolve
    from edgebench.host.results_db.record import record

    record(list(paths), resolve(args.db, results_root), quiet=getattr(args, "quiet", False))


def report_links(args, results_root=None):
    """A function of the reported folders giving the report's blocks on the previous run of the
    same models (nothing without a database or an earlier run)."""
    from edgebench.host.results_db.connect import resolve

    url = resolve(args.db, results_root)

    def links(folders) -> list:
        from edgebench.host.results_db.link import previous_run_blocks

        return previous_run_blocks(url, folders if isinstance(folders, list) else [folders])
    return links
