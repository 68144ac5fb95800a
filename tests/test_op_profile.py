"""Per-operator time profiles (issue 28, item 3), `--profile-ops N`: after a row's timed loop its
child runs a profiled pass on a session of its own and op_profile.csv gets one line per node.
Validated on a generated ONNX model with one deliberately heavy convolution (tests/onnx_factory.py:
heavy_conv_graph, >= 5x the multiply-adds of any other op) measured on ONNX Runtime."""
from __future__ import annotations

import csv
import shutil

import pytest
from scipy.stats import spearmanr

from agent_helpers import read_rows, run_agent
from onnx_factory import HEAVY_ARCH, HEAVY_NODE, add_heavy_conv_model
from tflite_factory import make_bundle

from edgebench.device.schema import OP_PROFILE, RESULT_COLUMNS

pytestmark = pytest.mark.timeout(600)

HEAVY = f"{HEAVY_ARCH}.ort.fp32"
LITERT = "tinycnn.fp32"
PROFILED_RUNS = 50
# The ops making up this share of the time are the ones whose ranking must hold.
TOP_SHARE = 0.8
# Spearman's rho of two profiles of the same row over those ops, measured on this 2-core VM (see
# test_two_profiles_rank_the_top_ops_alike): 1.000 in every pair of 9 runs of this test, the
# VM quiet or loaded by a neighbour's tests; one swap of two adjacent ops of five gives 0.9.
MIN_RANK_CORRELATION = 0.7
# A timed loop whose mean is within this factor of its fastest run ran on a quiet CPU (quiet
# here: 1.01-1.05; beside a neighbour's tests: up to 2.2).
QUIET = 1.15


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    bundle = make_bundle(tmp_path_factory.mktemp("op-profile") / "bundle", recipes=("fp32",))
    add_heavy_conv_model(bundle)
    return bundle


@pytest.fixture(scope="module")
def profiled(bundle, tmp_path_factory):
    """Three rounds of the heavy model and of a LiteRT model, profiled."""
    out = tmp_path_factory.mktemp("op-profile-out") / "out"
    # a timed loop of ~100 runs: one stalled run moves the mean the kernels are checked against
    # by 1 %, not 5 %
    proc = run_agent(bundle, out, "--models", f"{LITERT},{HEAVY}", "--rounds", "3",
                     "--profile-ops", str(PROFILED_RUNS), "--min-seconds", "0.3")
    assert proc.returncode == 0, proc.stderr
    return out


def rows_of(out, model):
    return [r for r in read_rows(out / "results.csv")[1] if r["model"] == model]


def profiles(out) -> dict:
    """round -> its op_profile.csv lines, in file order."""
    header, lines = read_rows(out / OP_PROFILE.file)
    assert tuple(header) == OP_PROFILE.names
    by_round = {}
    for line in lines:
        by_round.setdefault(line["round"], []).append(line)
    return by_round


def node_of(line) -> str:
    return line["node"]


def test_the_heavy_convolution_comes_first_in_each_of_three_profiles(profiled):
    by_round = profiles(profiled)
    assert sorted(by_round) == ["1", "2", "3"]
    for round_no, lines in sorted(by_round.items()):
        assert all(line["model"] == HEAVY and line["runtime"] == "onnxruntime" for line in lines)
        ranked = sorted(lines, key=lambda line: -float(line["median_ms"]))
        first = ranked[0]
        print("round", round_no, [(node_of(x), x["median_ms"]) for x in ranked[:4]])
        assert first["node"].startswith(HEAVY_NODE), first
        assert first["op_type"] == "Conv" and first["provider"] == "CPUExecutionProvider"
        assert first["resolved"] == "true"
        assert float(first["median_ms"]) >= 4 * float(ranked[1]["median_ms"])
        assert float(first["low_ms"]) <= float(first["median_ms"]) <= float(first["high_ms"])
        assert all(int(x["profiled_runs"]) == PROFILED_RUNS for x in lines)
        assert sum(float(x["share"]) for x in lines) == pytest.approx(1.0, abs=1e-3)
        # the file lists a row's nodes slowest first
        assert lines == ranked


def top_nodes(lines) -> list:
    """The nodes (slowest first) that make up TOP_SHARE of a profile's time."""
    out, total = [], 0.0
    for line in sorted(lines, key=lambda x: -float(x["median_ms"])):
        out.append(line["node"])
        total += float(line["share"])
        if total >= TOP_SHARE:
            return out
    return out


def test_two_profiles_rank_the_top_ops_alike(profiled):
    by_round = profiles(profiled)
    rhos = []
    for a, b in (("1", "2"), ("1", "3"), ("2", "3")):
        times = [{x["node"]: float(x["median_ms"]) for x in by_round[r]} for r in (a, b)]
        nodes = sorted(set(top_nodes(by_round[a])) | set(top_nodes(by_round[b])))
        # five on a quiet machine; three when a neighbour's load slows the heavy convolution
        assert len(nodes) >= 3, nodes
        rho = spearmanr([times[0][n] for n in nodes], [times[1][n] for n in nodes])[0]
        print("rounds %s/%s: %d ops make up %.0f %%, Spearman rho %.3f"
              % (a, b, len(nodes), 100 * TOP_SHARE, rho))
        rhos.append(rho)
    assert min(rhos) >= MIN_RANK_CORRELATION, rhos


def test_ort_kernels_sum_to_the_unprofiled_mean_latency(profiled):
    """Each round's kernels against its own row's mean, in every round whose timed loop ran
    undisturbed (mean within QUIET of its fastest run). A neighbour on this shared 2-core VM can
    halve the CPU the timed loop gets (seen: p50 2.2x min, mean 1.8x the kernels), or stall a
    few of its runs (mean 1.8x min with p50 1.02x min); the profile's
    per-node medians are hardly touched by it (a preemption lands in one node of a run), so
    there the two measure different things and the check has nothing to say."""
    by_round = profiles(profiled)
    checked = []
    for row in rows_of(profiled, HEAVY):
        assert row["status"] == "ok"
        kernels = sum(float(x["median_ms"]) for x in by_round[row["round"]])
        ratio = kernels / float(row["mean_ms"])
        disturbed = float(row["mean_ms"]) / float(row["min_ms"])
        print("round %s: kernels %.3f ms, row mean %.3f ms, ratio %.3f (mean/min %.2f)"
              % (row["round"], kernels, float(row["mean_ms"]), ratio, disturbed))
        ops = len(by_round[row["round"]])
        assert row["error"] == ("op profile: %d ops, kernels sum to %.0f %% of p50"
                                % (ops, 100 * kernels / float(row["p50_ms"])))
        if disturbed <= QUIET:
            assert ratio == pytest.approx(1.0, abs=0.15)
            checked.append(ratio)
    if not checked:
        pytest.skip("every round's timed loop was disturbed by other load (mean > %.2f x min)"
                    % QUIET)


def test_a_litert_row_says_its_ops_are_not_profiled_yet(profiled):
    rows = rows_of(profiled, LITERT)
    assert len(rows) == 3
    for row in rows:
        assert row["status"] == "ok"
        assert row["error"] == "op profile: per-op time of LiteRT rows is not measured yet"
    assert all(line["model"] == HEAVY for lines in profiles(profiled).values() for line in lines)


def test_without_profile_ops_there_is_no_op_profile_and_the_row_is_as_before(bundle, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", f"{LITERT},{HEAVY}")
    assert proc.returncode == 0, proc.stderr
    assert not (out / OP_PROFILE.file).exists()
    header, rows = read_rows(out / "results.csv")
    assert tuple(header) == RESULT_COLUMNS
    assert [(r["model"], r["status"], r["error"]) for r in rows] == [(LITERT, "ok", ""),
                                                                     (HEAVY, "ok", "")]


def test_a_resumed_run_writes_each_rows_profile_once(profiled, bundle, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(profiled, out)
    earlier_rounds = [x for x in read_rows(out / OP_PROFILE.file)[1] if x["round"] != "3"]
    # as if the agent had been killed after round 3's profile lines, before its row
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    model = rows[0].index("model")
    round_col = rows[0].index("round")
    kept = [r for r in rows if not (r[model] == HEAVY and r[round_col] == "3")]
    assert len(kept) == len(rows) - 1
    with open(out / "results.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(kept)
    proc = run_agent(bundle, out, "--models", f"{LITERT},{HEAVY}", "--rounds", "3",
                     "--profile-ops", str(PROFILED_RUNS))
    assert proc.returncode == 0, proc.stderr
    by_round = profiles(out)
    counts = {r: len(lines) for r, lines in by_round.items()}
    assert counts["3"] == counts["1"] == counts["2"], counts
    assert len(set(x["node"] for x in by_round["3"])) == counts["3"]
    # rounds 1 and 2 kept as they were; a plain re-run changes nothing
    assert [x for x in read_rows(out / OP_PROFILE.file)[1] if x["round"] != "3"] == earlier_rounds
    again = (out / OP_PROFILE.file).read_text()
    proc = run_agent(bundle, out, "--models", f"{LITERT},{HEAVY}", "--rounds", "3",
                     "--profile-ops", str(PROFILED_RUNS))
    assert proc.returncode == 0, proc.stderr
    assert (out / OP_PROFILE.file).read_text() == again


def test_the_hosts_loader_reads_op_profile_when_present_and_is_empty_without(profiled, bundle,
                                                                             tmp_path):
    from edgebench.host.report.load import OP_PROFILE_KEEP, load_results

    loaded = load_results([profiled]).op_profile
    assert len(loaded) == sum(len(lines) for lines in profiles(profiled).values())
    assert set(OP_PROFILE_KEEP + ["device"]) <= set(loaded.columns)
    assert loaded["median_ms"].dtype.kind == "f" and loaded["resolved"].dtype == bool
    assert set(loaded["model"]) == {HEAVY} and loaded["device"].nunique() == 1
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", LITERT)
    assert proc.returncode == 0, proc.stderr
    empty = load_results([out]).op_profile
    assert empty.empty and list(empty.columns) == OP_PROFILE_KEEP + ["device"]


def test_deploy_and_run_pass_profile_ops_to_the_agent():
    from edgebench.device.agent.cli import parse_args
    from edgebench.host.cli import build_parser
    from edgebench.host.commands.agent_options import agent_options_from
    from edgebench.host.errors import UserError

    for argv, more in ((["deploy", "--bundle", "b"], {}), (["run"], {"models": None})):
        args = build_parser().parse_args(argv + ["--profile-ops", "50"])
        options = agent_options_from(args, **more)
        assert options.to_argv()[-2:] == ["--profile-ops", "50"]
        assert parse_args(["--bundle", "b", "--out", "o", *options.to_argv()]).profile_ops == 50
    assert parse_args(["--bundle", "b", "--out", "o"]).profile_ops == 0
    for bad in ("3", "-1"):
        with pytest.raises(UserError, match="--profile-ops takes 0"):
            agent_options_from(build_parser().parse_args(["deploy", "--bundle", "b",
                                                          "--profile-ops", bad]))


def test_the_database_keeps_the_op_profile_lines(profiled, tmp_path):
    """Imported, then read back as a run of the database: the same lines, typed as from files."""
    from cli_runner import run_cli

    from edgebench.host.report.load import load_results
    from edgebench.host.results_db.connect import open_db
    from edgebench.host.results_db.read import load_run

    db = tmp_path / "db.sqlite"
    code, out, err = run_cli("import", profiled, "--db", db)
    assert code == 0, out + err
    run_id = read_rows(profiled / "results.csv")[1][0]["run_id"]
    stored = load_run(open_db(str(db)), run_id).op_profile
    files = load_results([profiled]).op_profile
    assert len(stored) == len(files) > 0
    key = ["round", "node"]
    stored, files = (df.sort_values(key).reset_index(drop=True) for df in (stored, files))
    assert list(stored["median_ms"]) == list(files["median_ms"])
    assert stored["resolved"].dtype == bool and list(stored["node"]) == list(files["node"])
    code, out, err = run_cli("import", profiled, "--db", db)  # again: nothing added twice
    assert code == 0 and len(load_run(open_db(str(db)), run_id).op_profile) == len(files)
