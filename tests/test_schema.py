"""The schema as code (edgebench.device.schema): one table of record types that the agent writes
by and the host reads and migrates by, and the committed example results still reporting."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from edgebench.device import schema
from edgebench.host.report import build_report

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


@pytest.mark.parametrize("record", schema.RECORDS, ids=lambda r: r.file)
def test_records_are_consistent(record):
    assert len(set(record.names)) == len(record.names)
    assert set(record.key) <= set(record.names)
    assert {c.kind for c in record.columns} <= {schema.TEXT, schema.INT, schema.FLOAT,
                                                 schema.BOOL, schema.TRISTATE}
    assert all(record.since <= c.since <= schema.RESULTS_SCHEMA_VERSION for c in record.columns)
    assert record.missing_before(schema.RESULTS_SCHEMA_VERSION) == {}


def test_keys_are_one_definition():
    assert schema.RESULTS.key == ("model",) + schema.RESULT_KEY
    assert schema.SAMPLES.key == schema.RESULT_KEY
    assert schema.PREDICTIONS.key == schema.OUTPUT_KEY
    assert set(schema.OUTPUT_KEY) < set(schema.RESULT_KEY)
    row = {"sha256": "ab", "threads": 2, "xnnpack": "on", "runtime": "litert",
           "compute_unit": "cpu", "round": 1}
    assert schema.row_key(row) == ("ab", "2", "on", "litert", "cpu", "1")
    assert schema.output_key(row) == ("ab", "litert", "on", "cpu")


def test_the_committed_example_still_reports_the_same(tmp_path):
    """results/example/ as committed (the previous version's files) reports, and its summary is
    the one committed beside it."""
    shutil.copytree(EXAMPLE / "local", tmp_path / "run" / "local")
    paths = build_report([tmp_path / "run"], tmp_path / "out")
    assert paths.markdown.is_file()
    for name in ("summary.csv", "robustness_summary.csv"):
        made = pd.read_csv(tmp_path / "out" / name)
        kept = pd.read_csv(EXAMPLE / name)
        assert list(made.columns) == list(kept.columns), name
        pd.testing.assert_frame_equal(made.drop(columns=["source"], errors="ignore"),
                                      kept.drop(columns=["source"], errors="ignore"),
                                      check_exact=False, rtol=1e-9, check_dtype=False)


def test_example_rewritten_as_schema_1_reports_as_cpu_rows(tmp_path):
    """The migration reads the table: the example's files with every column that arrived after
    schema 1 removed (as the first agent wrote them) still report, as CPU rows of round 1."""
    run = tmp_path / "run" / "local"
    run.mkdir(parents=True)
    for record in (schema.RESULTS, schema.SAMPLES):
        df = pd.read_csv(EXAMPLE / "local" / record.file, dtype=str, keep_default_na=False)
        df = df[df.get("round", "1") == "1"] if "round" in df else df
        df = df.drop(columns=[c for c in record.missing_before(1) if c in df])
        df["schema_version"] = "1"
        df.to_csv(run / record.file, index=False)
    shutil.copy(EXAMPLE / "local" / "env.json", run / "env.json")
    paths = build_report([tmp_path / "run"], tmp_path / "out")
    summary = pd.read_csv(paths.summary_csv)
    assert set(summary["compute_unit"]) == {"cpu"}
    assert summary["p50_ms"].notna().all()


def test_every_event_the_agent_emits_is_in_the_schema():
    import ast

    emitted = set()
    for path in (Path(schema.__file__).parent).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "emit"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                emitted.add(node.args[0].value)
    assert emitted and emitted <= set(schema.EVENTS), emitted - set(schema.EVENTS)
