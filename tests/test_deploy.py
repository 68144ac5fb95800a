"""End-to-end deploys with the real agent and a real bundle, on LocalTarget and over a real
OpenSSH server on loopback: same CSV columns, rows for every model, cached re-deploys, resume."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from agent_helpers import FAST
from sshd import SYSTEM_PYTHON
from edgebench.device.schema import RESULT_COLUMNS
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.deploy import deploy
from edgebench.host.deploy_summary import summary
from edgebench.host.errors import UserError
from edgebench.host.targets import ConnectOptions, TargetSpec, parse_target

pytestmark = pytest.mark.ssh
RECIPES = ("fp32", "int8")


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    from tflite_factory import make_bundle
    return make_bundle(tmp_path_factory.mktemp("deploy-bundle") / "bundle", recipes=RECIPES)


def ssh_options(env, known_hosts) -> ConnectOptions:
    return ConnectOptions(known_hosts=str(known_hosts), identity_files=[str(env.client_key)],
                          allow_agent=False, look_for_keys=False, connect_timeout=5)


def ssh_spec(env, server, remote_dir, name=None) -> TargetSpec:
    spec = parse_target(server.target)
    spec.name = name or spec.name
    spec.python, spec.remote_dir = env.python, remote_dir
    return spec


def read_csv(path: Path):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames), list(r)


def store_is_sound(store: Path) -> None:
    """Every file in the content store is named by its own sha256; no temp file was kept."""
    for f in store.iterdir():
        assert not f.name.startswith((".tmp-", ".part-")), f"a partial upload was left: {f.name}"
        assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name


def test_ssh_deploy_matches_local_columns_and_redeploy_sends_nothing(
        bundle, ssh_env, sshd, known_hosts, remote_dir, tmp_path):
    names = [m["name"] for m in json.loads((bundle / "manifest.json").read_text())["models"]]
    local = TargetSpec(name="local", kind="local", remote_dir=str(tmp_path / "local-device"))
    remote = ssh_spec(ssh_env, sshd, remote_dir, name="loop-pi")
    events = []
    outcomes = deploy(bundle, [local, remote], tmp_path / "results", FAST,
                      options=ssh_options(ssh_env, known_hosts), progress=False,
                      on_event=lambda name, ev: events.append((name, ev)))
    assert [o.ok for o in outcomes] == [True, True], summary(outcomes)
    cols = {}
    for o in outcomes:
        assert o.results == tmp_path / "results" / o.run_id / o.target
        cols[o.target], rows = read_csv(o.results / "results.csv")
        assert sorted(r["model"] for r in rows) == sorted(names)
        assert all(r["status"] == "ok" and float(r["p50_ms"]) > 0 for r in rows)
        assert (o.results / "latency_samples.csv").exists() and (o.results / "env.json").exists()
        assert o.transfer.files_sent > 0 and o.transfer.bytes_skipped == 0
    assert cols["local"] == cols["loop-pi"] == list(RESULT_COLUMNS)
    assert {ev["event"] for n, ev in events if n == "loop-pi"} >= {"model_start", "row", "done"}
    store_is_sound(ssh_env.home / remote_dir / "store")

    # Re-deploy of unchanged models: nothing is re-sent; it is a run of its own, measured anew.
    again = deploy(bundle, [remote], tmp_path / "results", FAST,
                   options=ssh_options(ssh_env, known_hosts), progress=False)[0]
    assert again.ok and again.transfer.bytes_sent == 0
    assert again.transfer.files_skipped == len(load_bundle(bundle).files)
    assert again.rows == len(names) and again.run_id != outcomes[1].run_id


def test_cut_link_mid_upload_commits_what_arrived_and_the_next_run_completes(
        bundle, ssh_env, sshd, known_hosts, remote_dir, tmp_path, tcp_proxy):
    # ~15 kB of handshake, preflight and lock go first; then the bundle (~130 kB) is uploading.
    proxy = tcp_proxy(sshd.port, reset_after_up=15_000 + load_bundle(bundle).size // 2)
    spec = ssh_spec(ssh_env, sshd, remote_dir, name="flaky")
    spec.port = proxy.port
    kh = tmp_path / "kh"   # the proxy's port is another known_hosts name
    kh.write_text(sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} "))
    failed = deploy(bundle, [spec], tmp_path / "results", FAST,
                    options=ssh_options(ssh_env, kh), retries=0, progress=False)[0]
    assert not failed.ok and proxy.cuts == 1
    assert re.search(r"link dropped while uploading \S+ \([\d,]+ of [\d,]+ bytes sent; \d+ of "
                     r"\d+ files complete before it\): .*the retry resumes", failed.error), \
        failed.error
    assert "gave up after 1 attempts" in failed.error
    store = ssh_env.home / remote_dir / "store"
    for f in store.iterdir():   # whatever reached its final name is whole
        assert f.name.startswith(".part-") or hashlib.sha256(f.read_bytes()).hexdigest() == f.name
    run_dir = (ssh_env.home / remote_dir / "runs" /
               f"{failed.run_id}-{load_bundle(bundle).content_id}")
    assert not (run_dir / "out").exists()

    proxy.reset_after_up = None
    done = deploy(bundle, [spec], tmp_path / "results", FAST,
                  options=ssh_options(ssh_env, kh), retries=0, progress=False)[0]
    assert done.ok, done.error
    assert done.run_id == failed.run_id and "resuming run" in done.run_note  # the cut one
    assert done.rows == len(RECIPES)
    # What arrived before the cut (committed, or complete or partial under .part-) is not resent.
    size = load_bundle(bundle).size
    assert done.transfer.bytes_sent < size
    assert done.transfer.bytes_resumed + done.transfer.bytes_skipped > 0
    store_is_sound(store)


def test_dropped_link_is_retried_once_with_backoff(
        bundle, ssh_env, sshd, known_hosts, remote_dir, tmp_path, tcp_proxy):
    proxy = tcp_proxy(sshd.port, reset_after_up=15_000 + load_bundle(bundle).size // 2)
    proxy.fault_connections = 1          # only the first connection is cut
    spec = ssh_spec(ssh_env, sshd, remote_dir)
    spec.port = proxy.port
    kh = tmp_path / "kh"
    kh.write_text(sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} "))
    out = deploy(bundle, [spec], tmp_path / "results", FAST, options=ssh_options(ssh_env, kh),
                 retries=1, backoff_s=0.2, progress=False)[0]
    assert out.ok, out.error
    assert out.attempts == 2 and proxy.cuts == 1 and out.rows == len(RECIPES)
    store_is_sound(ssh_env.home / remote_dir / "store")


def test_manifest_names_that_leave_the_folder_are_refused(bundle, tmp_path):
    for field, value in (("name", "../../evil"), ("name", "x; rm -rf ~"),
                         ("file", "../outside.tflite"), ("file", "models/$(id).tflite"),
                         ("reference", "/etc/passwd")):
        bad = tmp_path / f"bad-{field}"
        shutil.copytree(bundle, bad, dirs_exist_ok=True)
        manifest = json.loads((bad / "manifest.json").read_text())
        manifest["models"][0][field] = value
        (bad / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(UserError, match="refusing"):
            deploy(bad, [parse_target("local")], tmp_path / "r", progress=False)
    bad = tmp_path / "bad-run"
    shutil.copytree(bundle, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["run_id"] = "../run"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="refusing run id"):
        load_bundle(bad)


def test_corrupt_bundle_model_is_refused(bundle, tmp_path):
    bad = tmp_path / "corrupt"
    shutil.copytree(bundle, bad)
    model = next((bad / "models").glob("*.tflite"))
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(UserError, match="does not match its manifest sha256"):
        load_bundle(bad)


def test_preflight_names_what_to_install(bundle, ssh_env, sshd, known_hosts, remote_dir, tmp_path):
    spec = ssh_spec(ssh_env, sshd, remote_dir)
    spec.python = SYSTEM_PYTHON          # no numpy, no interpreter there
    out = deploy(bundle, [spec], tmp_path / "r", FAST, options=ssh_options(ssh_env, known_hosts),
                 progress=False)[0]
    assert not out.ok
    assert "device not ready" in out.error and "pip install numpy" in out.error
    assert "pip install ai-edge-litert" in out.error
    spec.python = "/opt/none/bin/python3"
    out = deploy(bundle, [spec], tmp_path / "r", FAST, options=ssh_options(ssh_env, known_hosts),
                 progress=False)[0]
    assert "not found" in out.error and "--remote-python" in out.error


def deploy_models_locally(tmp_path: Path, recipe: str, run_id: str) -> list:
    """`bench-host deploy --models-dir` with one factory model on the local target; its rows."""
    from cli_runner import run_cli
    from tflite_factory import factory_dir
    models = tmp_path / f"models-{recipe}"
    models.mkdir()
    for ext in ("tflite", "json"):
        shutil.copy(factory_dir() / "models" / f"tinycnn.{recipe}.{ext}", models)
    code, out, err = run_cli("deploy", "--models-dir", models, "--testset",
                             factory_dir() / "testset.npz", "--run-id", run_id,
                             "--remote-dir", tmp_path / "device", "--results", tmp_path / "res",
                             "--no-progress", *FAST.to_argv())
    assert code == 0, out + err
    assert (tmp_path / "res" / run_id / "bundle" / "manifest.json").exists()
    return read_csv(tmp_path / "res" / run_id / "local" / "results.csv")[1]


def test_deploy_command_builds_a_bundle_and_runs_locally(tmp_path):
    """The embedded default: `deploy --models-dir` bundles first, then runs on this machine."""
    rows = deploy_models_locally(tmp_path, "int8", "cli-local")
    assert [r["model"] for r in rows] == ["tinycnn.int8"] and rows[0]["status"] == "ok"
    assert rows[0]["accuracy"] != ""


def test_a_finished_run_id_is_refused_before_its_bundle_is_replaced(tmp_path):
    """Other models under a finished run's id would be another measurement under its name: refused
    in one line before anything is bundled, and the run's rows and bundle stay as they were."""
    rows = deploy_models_locally(tmp_path, "int8", "same-id")
    assert [r["model"] for r in rows] == ["tinycnn.int8"]
    manifest = (tmp_path / "res" / "same-id" / "bundle" / "manifest.json").read_text()
    from cli_runner import run_cli
    code, out, err = run_cli("deploy", "--models-dir", tmp_path / "models-int8", "--run-id",
                             "same-id", "--results", tmp_path / "res", "--no-progress",
                             *FAST.to_argv())
    assert code == 2 and "run same-id" in err and "is finished" in err
    assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "res" / "same-id" / "bundle" / "manifest.json").read_text() == manifest
    assert read_csv(tmp_path / "res" / "same-id" / "local" / "results.csv")[1] == rows


def test_rebundled_unchanged_models_resume_on_the_device(tmp_path):
    """Bundling the same models again writes a new manifest (a new `created`) and a new, byte-equal
    agent.pyz: the content id stays, so an interrupted run's rows are found on the device and
    nothing is measured twice."""
    first = deploy_models_locally(tmp_path, "int8", "again")
    run_json = tmp_path / "res" / "again" / "run.json"
    run = json.loads(run_json.read_text())
    run["targets"]["local"], run["finished_utc"] = "running", None  # as a killed host leaves it
    run_json.write_text(json.dumps(run))
    shutil.rmtree(tmp_path / "models-int8")
    second = deploy_models_locally(tmp_path, "int8", "again")
    assert len(list((tmp_path / "device" / "runs").iterdir())) == 1
    assert [r["started_utc"] for r in second] == [r["started_utc"] for r in first]


def test_a_bundle_of_the_previous_version_asks_to_be_rebuilt(bundle, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    (old / "agent.pyz").rename(old / "agent.py")
    with pytest.raises(UserError) as err:
        load_bundle(old)
    assert "rebuild this bundle with bench-host bundle" in str(err.value)
    assert "\n" not in str(err.value)
