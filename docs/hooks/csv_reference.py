"""The file formats, from device/schema.py (the record types: columns, kinds, keys, the schema
version each column arrived in) and device/schema_docs.py (each column's unit and meaning). A
column added to the schema appears here; one without a description fails tests/test_docs.py."""
from __future__ import annotations

import md


def missing_descriptions() -> list:
    """(file, column) of every column schema_docs.py does not describe."""
    from edgebench.device import schema, schema_docs
    return [(r.file, c.name) for r in schema.RECORDS for c in r.columns
            if not schema_docs.describe(r.file, c.name)]


def _record(record) -> list:
    from edgebench.device import schema_docs
    rows = []
    for c in record.columns:
        unit, meaning = schema_docs.describe(record.file, c.name) or ("", "**not described**")
        before = md.code(c.before) if c.before is not None else ""
        rows.append((md.code(c.name), c.kind, md.text(unit), str(c.since), before,
                     md.text(meaning)))
    key = ", ".join(md.code(k) for k in record.key)
    return [f"## {record.file}", "",
            f"Since schema {record.since}. One line per {key}." if key else "",
            "", md.table(("column", "kind", "unit", "since", "older files mean", "meaning"), rows),
            ""]


def _database() -> list:
    """The results database's tables, from host/results_db/schema.py's SQLAlchemy metadata."""
    from edgebench.host.results_db import schema as db
    out = ["## The results database", "",
           md.text(" ".join((db.__doc__ or "").split())), "",
           f"Database schema version {db.SCHEMA_VERSION}. The tables and their columns:", ""]
    for table in db.metadata.sorted_tables:
        rows = []
        for column in table.columns:
            notes = []
            if column.primary_key:
                notes.append("primary key")
            notes += [f"→ {md.code(fk.target_fullname)}" for fk in column.foreign_keys]
            if column.unique:
                notes.append("unique")
            rows.append((md.code(column.name), md.code(column.type), ", ".join(notes)))
        uniques = [", ".join(md.code(c.name) for c in u.columns) for u in table.constraints
                   if type(u).__name__ == "UniqueConstraint" and len(u.columns) > 1]
        out += [f"### {table.name}", ""]
        if uniques:
            out += ["Unique together: " + "; ".join(uniques) + ".", ""]
        out += [md.table(("column", "type", "key"), rows), ""]
    return out


def page() -> str:
    from edgebench.device import schema
    out = ["# Files and CSV columns", "",
           "Generated from `device/schema.py` and `device/schema_docs.py` when the site is built "
           "(`docs/hooks/csv_reference.py`). The agent writes these files into its results "
           "folder (`results/<run-id>/<target>/`); the host's report, compare and results "
           f"database read them. Current results schema: **{schema.RESULTS_SCHEMA_VERSION}**; "
           f"model card `{schema.MODEL_CARD_SCHEMA}`, manifest `{schema.MANIFEST_SCHEMA}`.", "",
           "Kinds: `text`; `int`; `float`; `bool` (`true`/`false`); `tristate` (`on`/`off` or "
           "empty). An empty cell is a value not measured, never a guess. *since* is the results "
           "schema a column arrived in, and *older files mean* the value the host fills in when "
           "it reads a file written before it.", ""]
    for record in schema.RECORDS:
        out += _record(record)
    out += ["## The other files", "",
            md.table(("file", "where", "what it holds"), [
                (md.code(schema.ENV_JSON), "results folder",
                 "the device's environment: board, CPU, OS, Python, runtime, sensors"),
                (md.code(schema.RUNTIME_LOG), "results folder", "what the runtime printed, per row"),
                (md.code(schema.MANIFEST_JSON), "bundle",
                 md.text(f"{schema.MANIFEST_SCHEMA}: schema, run_id, created, testset, models "
                         "(each a model card plus file and reference)")),
                (md.code(schema.TESTSET_NPZ), "bundle",
                 "images uint8 N×H×W×C, labels int64 N, class_names str[K]"),
                (md.code(schema.AGENT_ARCHIVE), "bundle",
                 "the agent: the `edgebench.device` package as one zipapp"),
                (md.code("reference/<arch>.npy"), "bundle",
                 "float32 N×K logits of the float (PyTorch) model on the test set"),
            ]), "",
            "## The model card", "",
            md.text(f"JSON beside every model file and one entry per model in the manifest "
                    f"({schema.MODEL_CARD_SCHEMA}). Keys, in order: "),
            ", ".join(md.code(k) for k in schema.CARD_KEYS) + ".", "",
            md.table(("key", "its keys"), [
                (md.code("input"), ", ".join(md.code(k) for k in schema.CARD_INPUT_KEYS)),
                (md.code("output"), ", ".join(md.code(k) for k in schema.CARD_OUTPUT_KEYS)),
                (md.code("source"), ", ".join(md.code(k) for k in schema.CARD_SOURCE_KEYS)),
                (md.code("verification"),
                 ", ".join(md.code(k) for k in schema.CARD_VERIFICATION_KEYS)),
                ("optional (host side)", ", ".join(md.code(k) for k in schema.CARD_EXTRA_KEYS)),
            ]), "",
            "## The agent's events", "",
            "The agent reports its progress as one JSON object per line on stdout, "
            "`{\"event\": NAME, ...}`; the host's deploy reads them. Events: "
            + ", ".join(md.code(e) for e in schema.EVENTS) + ".", ""]
    return "\n".join(out + _database())
