"""The tables. Natural keys make re-importing a folder idempotent: a device is its name and a
fingerprint of its environment, a model its file's sha256, a run its run id, device and start
time, a row its run, model, threads, XNNPACK setting, runtime, compute unit and round; samples
hang off their row in the order they were measured (the block bootstrap needs that order),
predictions off their run by the agent's output key, and the optional lines of results schema 4
(power readings, soak intervals, scenario lines, frames) off their row, each as its CSV line."""
from __future__ import annotations

from sqlalchemy import (Column, Float, ForeignKey, Integer, MetaData, PrimaryKeyConstraint,
                        String, Table, Text, UniqueConstraint)

from edgebench.device.schema import OUTPUT_KEY, RESULT_KEY

SCHEMA_VERSION = 1
metadata = MetaData()

# The agent's key columns (device/schema.py's RESULT_KEY and OUTPUT_KEY) as the database types
# them; store.stored_key fills an older file's blanks. A key column added there must get a type
# here (and a SCHEMA_VERSION step).
KEY_TYPES = {
    "sha256": String(64),
    "threads": Integer,        # -1: not recorded
    "xnnpack": String(8),      # on | off | "" (not recorded)
    "runtime": String(100),
    "compute_unit": String(300),
    "round": Integer,
}
# A row's key within its run: RESULT_KEY with the model's sha256 as rows.model_pk.
ROW_KEY = tuple(c for c in RESULT_KEY if c != "sha256")


def key_columns(names) -> list:
    return [Column(name, KEY_TYPES[name], nullable=False) for name in names]


meta = Table("edgebench_meta", metadata,
             Column("key", String(64), primary_key=True), Column("value", Text))

devices = Table(
    "devices", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # sha256 of the environment fields
    Column("machine", Text), Column("cpu", Text), Column("device_model", Text),
    Column("os", Text), Column("hostname", Text),
    Column("env", Text),  # env.json as written by the agent
    UniqueConstraint("name", "fingerprint"),
)

models = Table(
    "models", metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("name", String(200)), Column("architecture", String(100)),
    Column("recipe", String(50)), Column("file_size_mb", Float),
    Column("card", Text),  # the export's model card (JSON) when the run folder holds it
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", String(200), nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id"), nullable=False),
    Column("started_utc", String(40)), Column("imported_utc", String(40)),
    Column("source", Text),
    # A run id is the user's label and is reused (`bench-host run` names every run after its
    # profile): the same id started at another time on the same device is another run.
    UniqueConstraint("run_id", "device_id", "started_utc"),
)

rows = Table(
    "rows", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_pk", Integer, ForeignKey("runs.id"), nullable=False),
    Column("model_pk", Integer, ForeignKey("models.id"), nullable=False),
    *key_columns(ROW_KEY),
    Column("status", String(20)),
    Column("p50_ms", Float), Column("accuracy", Float), Column("peak_rss_mb", Float),
    Column("energy_mj", Float),
    Column("data", Text, nullable=False),  # the whole results.csv row, as JSON
    UniqueConstraint("run_pk", "model_pk", *ROW_KEY),
)

samples = Table(
    "samples", metadata,
    Column("row_pk", Integer, ForeignKey("rows.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    PrimaryKeyConstraint("row_pk", "seq"),
)

predictions = Table(
    "predictions", metadata,
    Column("run_pk", Integer, ForeignKey("runs.id"), nullable=False),
    *key_columns(OUTPUT_KEY),
    Column("testset", String(100), nullable=False),
    Column("image", Integer, nullable=False),
    Column("label", Integer), Column("predicted", Integer), Column("score", Float),
    Column("positive_class", Integer),
    PrimaryKeyConstraint("run_pk", *OUTPUT_KEY, "testset", "image"),
)

# power_samples.csv, soak.csv, scenarios.csv, frames.csv and op_profile.csv, under ResultSet's
# names for them (LINE_KINDS): one line of the file per entry, in file order, as JSON (the report
# types it back from the schema's record). Added without a schema version step: an older
# edgebench ignores a kind it does not know.
LINE_KINDS = ("power", "soak", "scenarios", "frames", "op_profile")
lines = Table(
    "lines", metadata,
    Column("row_pk", Integer, ForeignKey("rows.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", Text, nullable=False),
    PrimaryKeyConstraint("row_pk", "kind", "seq"),
)
