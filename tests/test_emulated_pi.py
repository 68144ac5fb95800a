"""The real ARM path, end to end, on virtual Raspberry Pis: arm64 Debian under qemu-user with its
own OpenSSH, each alone in a network namespace (edgebench.host.emulate).

bookworm (Python 3.11, LiteRT and ONNX Runtime 1.23.0 from the arm64 wheels) and bullseye (Python
3.9, glibc 2.31, tflite-runtime 2.13.0, ONNX Runtime 1.19.2) get `bench-host doctor` and `bench-host
deploy` with a tiny model in every recipe plus its ONNX Runtime fp32 and int8 files; their rows
must say aarch64, the runtime version of the arm64 wheel, emulated, and the accuracy the host
measured for the same models. Faults: the device powered off mid-run (rows kept on its disk,
resume after restart), and a rebuilt device answering with a new host key."""
from __future__ import annotations

import csv
import ipaddress
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent_helpers import by_model, run_agent, run_folder
from cli_runner import run_cli
from emulated_pi import *  # noqa: F401,F403
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.deploy import deploy
from edgebench.host.emulate import hostcheck
from edgebench.host.errors import UserError

pytestmark = pytest.mark.ssh
RECIPES = ("fp32", "dynamic", "fp16", "int8", "int16x8")
# The .onnx rows: the same tinycnn weights as the .tflite ones, as the ort route would ship them.
ORT_RECIPES = ("fp32", "int8")
ORT_MODELS = tuple(f"tinycnn.ort.{recipe}" for recipe in ORT_RECIPES)
ACCURACY_COLUMNS = ("n_test", "accuracy", "sensitivity", "specificity", "tn", "fp", "fn", "tp",
                    "agreement")


def read_rows(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def tflite_bundle(tmp_path_factory) -> Path:
    """The .tflite rows only: enough for the fault tests, which need rows, not runtimes."""
    from tflite_factory import make_bundle
    return make_bundle(tmp_path_factory.mktemp("emulated-bundle") / "bundle", recipes=RECIPES)


@pytest.fixture(scope="session")
def full_bundle(tflite_bundle, tmp_path_factory) -> Path:
    """The .tflite rows plus ONNX Runtime's fp32 and int8 of the same weights."""
    from onnx_factory import add_onnx_model, copy_bundle

    bundle = copy_bundle(tflite_bundle, tmp_path_factory.mktemp("emulated-ort") / "bundle")
    fp32 = add_onnx_model(bundle, name=ORT_MODELS[0])
    add_ort_int8(bundle, bundle / fp32["file"], fp32)
    return bundle


def add_ort_int8(bundle: Path, fp32_path: Path, fp32_card: dict) -> None:
    """The ort route's own int8 (static QDQ, the host's onnxruntime.quantization) of the fp32
    graph, calibrated on the images the factory's .tflite int8 was, with its card."""
    from onnx_factory import ort_card
    from tflite_factory import ARCH, factory_dir, normalize, synthetic_images

    from edgebench.host.export.converters import ort_route
    from edgebench.host.export.converters.job import ConversionJob

    stem = ORT_MODELS[1].rsplit(".", 1)[0]
    job = ConversionJob(saved_model=None, source=SimpleNamespace(onnx=str(fp32_path)),
                        model=None, recipes=["int8"],
                        calib_inputs=normalize(synthetic_images(64, seed=7)[0]), io="float",
                        out_dir=fp32_path.parent, stem=stem)
    (done,) = list(ort_route.run(job).events)
    assert done["status"] == "ok", done["error"]
    path = fp32_path.parent / f"{stem}.int8.onnx"
    tflite_card = json.loads((factory_dir() / "models" / f"{ARCH}.fp32.json").read_text())
    entry = dict(ort_card(tflite_card, path, "int8", 1), name=ORT_MODELS[1],
                 file=f"models/{path.name}")
    if fp32_card.get("reference"):
        entry["reference"] = fp32_card["reference"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["models"].append(entry)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))


@pytest.fixture(scope="session")
def host_rows(full_bundle, tmp_path_factory) -> dict:
    """The same bundle measured by the agent on this x86 host: the accuracy to match."""
    import onnxruntime

    out = tmp_path_factory.mktemp("host-agent")
    proc = run_agent(full_bundle, out, python=sys.executable)
    assert proc.returncode == 0, proc.stderr
    rows = by_model(read_rows(out / "results.csv"))
    assert all(r["status"] == "ok" and r["machine"] == "x86_64" for r in rows.values())
    assert {m: rows[m]["runtime_version"] for m in ORT_MODELS} == dict.fromkeys(
        ORT_MODELS, onnxruntime.__version__)
    return rows


def assert_rows_match_host(rows: list, host: dict, runtime: str, version: str, python: str,
                           ort_version: str):
    """Every row from the device, its runtime (ONNX Runtime for the .onnx rows) and the accuracy
    the host measured for the same model and runtime family."""
    assert sorted(r["model"] for r in rows) == sorted(host)
    for r in rows:
        assert r["machine"] == "aarch64", r
        assert r["emulated"] == "true", "rows from a qemu device must be marked emulated"
        if r["model"] in ORT_MODELS:
            assert_ort_row(r, ort_version)
            assert host[r["model"]]["runtime"] == "onnxruntime"
        else:
            assert r["runtime"] == runtime and r["runtime_version"] == version
        assert r["python"].startswith(python + ".")
        if r["status"] != "ok":
            continue
        h = host[r["model"]]
        for col in ACCURACY_COLUMNS:
            assert r[col] == h[col], (r["model"], col, r[col], h[col])
        assert abs(float(r["auc"]) - float(h["auc"])) < 1e-3


def assert_ort_row(r: dict, version: str) -> None:
    """An .onnx row: measured, by the image's ONNX Runtime on its CPU provider."""
    assert r["status"] == "ok", (r["model"], r["error"])
    assert (r["runtime"], r["runtime_version"]) == ("onnxruntime", version), r["model"]
    assert (r["api"], r["accelerator_device"]) == ("inference_session", "CPUExecutionProvider")
    assert r["compute_unit"] == "cpu" and r["xnnpack"] == ""
    assert float(r["p50_ms"]) > 0


# --- no device needed: what a machine without the facilities is told -------------------------

def test_missing_binfmt_is_a_message_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(hostcheck, "BINFMT_DIR", tmp_path)
    with pytest.raises(UserError, match="binfmt_misc is not mounted: mount -t binfmt_misc"):
        hostcheck.ensure_binfmt(fix=False)
    (tmp_path / "status").write_text("enabled\n")
    with pytest.raises(UserError, match="apt-get install -y qemu-user-static binfmt-support"):
        hostcheck.ensure_binfmt(fix=False)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\n"
                                           "flags: P\noffset 0\n")
    with pytest.raises(UserError, match="lacks the F flag"):
        hostcheck.ensure_binfmt(fix=False)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: PF\noffset 0\n")
    assert hostcheck.ensure_binfmt(fix=False) == []


def test_not_root_is_a_message(monkeypatch):
    from edgebench.host import emulate

    monkeypatch.setattr(hostcheck.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError, match="needs root .*run it with sudo"):
        emulate.start("bookworm", "never-started")


def test_missing_tools_name_the_packages(monkeypatch):
    monkeypatch.setattr(hostcheck.shutil, "which", lambda tool: None)
    with pytest.raises(UserError, match=r"missing mmdebstrap.*apt-get install -y .*mmdebstrap"):
        hostcheck.require_tools({"mmdebstrap": "mmdebstrap", "ls": "coreutils"})


def test_image_key_follows_the_pinned_wheels():
    """A cached image is named by its recipe's key: a wheel added or re-pinned is another image
    (built anew), while the name and summary are not part of what the image holds."""
    import onnxruntime

    from edgebench.host.emulate import get_image
    from edgebench.host.emulate.images import image_path, wheel_dir

    bookworm, bullseye = get_image("bookworm"), get_image("bullseye")
    # bookworm's ONNX Runtime is the host's (ORT rows from both run the same release)
    assert bookworm.pinned("onnxruntime") == onnxruntime.__version__
    assert bullseye.pinned("onnxruntime") == "1.19.2"
    # ORT 1.19.2's aarch64 wheel is tagged manylinux_2_27 only
    assert "manylinux_2_27_aarch64" in bullseye.platforms
    without = replace(bookworm, wheels=tuple(w for w in bookworm.wheels
                                             if not w.startswith("onnxruntime")))
    repinned = replace(bookworm, wheels=tuple("onnxruntime==1.22.0" if w.startswith(
        "onnxruntime") else w for w in bookworm.wheels))
    keys = {bookworm.key, without.key, repinned.key}
    assert len(keys) == 3
    assert len({image_path(r) for r in (bookworm, without, repinned)}) == 3
    assert wheel_dir(without) != wheel_dir(bookworm)
    assert replace(bookworm, summary="renamed").key == bookworm.key


# --- bookworm: LiteRT from the arm64 wheel ---------------------------------------------------

def test_bookworm_doctor_and_deploy_match_host(pi_bookworm, emulated_images, full_bundle,
                                               host_rows, tmp_path):
    dev, info = pi_bookworm, emulated_images["bookworm"]
    assert info["runtime_version"] == "2.1.0"      # what pip installed from the aarch64 wheel
    assert info["wheels"]["onnxruntime"] == "1.23.0"
    code, out, err = run_cli("doctor", "--target", dev.target, "--known-hosts", dev.known_hosts,
                             "-i", dev.client_key)
    assert code == 0, out + err
    assert "aarch64" in out and "ai_edge_litert 2.1.0" in out and "Python 3.11" in out

    inventory = tmp_path / "fleet.ini"
    inventory.write_text("[pis]\n" + dev.inventory_line() + "\n")
    code, out, err = run_cli("deploy", "--bundle", full_bundle, "--inventory", inventory,
                             "--known-hosts", dev.known_hosts, "--results", tmp_path / "res",
                             "--no-progress", *AGENT_OPTIONS.to_argv())
    assert code == 0, out + err
    results = run_folder(tmp_path / "res") / dev.name
    rows = read_rows(results / "results.csv")
    assert all(r["status"] == "ok" for r in rows), [(r["model"], r["error"]) for r in rows]
    assert_rows_match_host(rows, host_rows, "litert", info["runtime_version"], "3.11",
                           ort_version="1.23.0")
    assert len(rows) == len(RECIPES) + len(ORT_MODELS)
    assert {r["hostname"] for r in rows} == {dev.name}      # its own UTS namespace
    env = json.loads((results / "env.json").read_text())
    assert env["machine"] == "aarch64" and env["emulated"] is True

    from edgebench.host.report import build_report
    report = build_report([results], tmp_path / "report")
    markdown = report.markdown.read_text()
    assert "timings not representative" in markdown
    assert "onnxruntime 1.23.0" in markdown and "litert 2.1.0" in markdown


def test_device_powered_off_mid_run_keeps_rows_and_resumes(pi_bookworm, tflite_bundle,
                                                           tmp_path):
    from edgebench.host import emulate

    dev = pi_bookworm
    spec = dev.spec()
    spec.remote_dir = "fault-run"
    runs = emulate.device_dir(dev.name) / "rootfs" / "home" / dev.user / "fault-run" / "runs"

    def results_on_disk() -> Path:  # the run's id is chosen by the deploy
        found = sorted(runs.glob("*/out/results.csv")) if runs.is_dir() else []
        return found[0] if found else runs / "none"
    slow = replace(AGENT_OPTIONS, min_seconds=1.0)
    cut = []

    def power_cut():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            on_disk = results_on_disk()
            if on_disk.exists() and len(on_disk.read_text().splitlines()) >= 2:
                emulate.stop(dev.name)
                cut.append(time.monotonic())
                return
            time.sleep(0.05)
    t = threading.Thread(target=power_cut)
    t.start()
    first = deploy(tflite_bundle, [spec], tmp_path / "res", slow,
                   options=device_options(dev, connect_timeout=3), retries=0, progress=False)[0]
    t.join()
    assert cut, "the agent finished before the device could be powered off"
    assert not first.ok and "link dropped" in first.error, first.error
    kept = read_rows(results_on_disk())  # the device's own disk, read from the host
    assert len(kept) == 1 and kept[0]["status"] == "ok"

    again = emulate.start(dev.image, dev.name)
    assert (again.dev_addr, again.known_hosts) == (dev.dev_addr, dev.known_hosts)
    events = []
    # the same options: a deploy resumes only the interrupted run it would measure again
    second = deploy(tflite_bundle, [spec], tmp_path / "res", slow,
                    options=device_options(dev), progress=False,
                    on_event=lambda name, ev: events.append(ev))[0]
    assert second.ok, second.error
    assert second.rows == len(RECIPES)
    assert second.run_id == first.run_id  # the interrupted run, resumed
    assert second.stale_lock and second.stale_lock["run_id"] == first.run_id
    assert any(ev["event"] == "skip" and ev["model"] == kept[0]["model"] for ev in events)
    rows = read_rows(second.results / "results.csv")
    assert rows[0] == kept[0]            # measured once, before the power cut; not redone


def test_network_namespace_has_no_way_out(pi_bookworm):
    from edgebench.host.emulate import netns

    dev = pi_bookworm
    routes = netns.routes(dev.netns)
    assert not any(r.get("dst") == "default" for r in routes), routes
    main4 = hostcheck.run_quiet(["ip", "-j", "-n", dev.netns, "-4", "route"]).stdout
    link = ipaddress.ip_network(f"{dev.dev_addr}/30", strict=False)
    assert [r["dst"] for r in json.loads(main4)] == [str(link)]     # its own /30, nothing else
    assert ipaddress.ip_address(dev.host_addr) in link
    # A routing lookup only (no packet is sent): an outside address has no route at all.
    probe = hostcheck.run_quiet(["ip", "-n", dev.netns, "route", "get", "198.51.100.1"],
                                check=False)
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()


def test_emulate_command_status_and_bad_input(pi_bookworm):
    code, out, err = run_cli("emulate", "status")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith(pi_bookworm.name))
    assert "running" in line and pi_bookworm.dev_addr in line
    code, out, err = run_cli("emulate", "start", "--image", "help")
    assert code == 0 and "bookworm" in out and "bullseye" in out
    code, out, err = run_cli("emulate", "start", "--image", "jessie")
    assert code == 2 and "unknown emulated image 'jessie'" in err and "Traceback" not in err
    code, out, err = run_cli("emulate", "stop", "--name", "../etc")
    assert code == 2 and "bad device name '../etc'" in err


def test_rebuilt_device_with_new_host_key_is_refused(pi_bookworm, tflite_bundle, tmp_path):
    from edgebench.host import emulate

    dev = pi_bookworm
    old_known = tmp_path / "known_hosts"
    shutil.copy(dev.known_hosts, old_known)
    emulate.stop(dev.name, purge=True)              # reflash: a new disk, a new host key
    rebuilt = emulate.start(dev.image, dev.name)
    assert rebuilt.dev_addr == dev.dev_addr
    assert Path(rebuilt.known_hosts).read_text() != old_known.read_text()
    code, out, err = run_cli("deploy", "--bundle", tflite_bundle, "--target", rebuilt.target,
                             "--known-hosts", old_known, "-i", rebuilt.client_key,
                             "--results", tmp_path / "res", "--no-progress",
                             *AGENT_OPTIONS.to_argv())
    assert code == 1
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in out and "ssh-keygen -R" in out
    workdir = os.environ["EDGEBENCH_REMOTE_DIR"]  # the suite's default (conftest.py)
    assert not (emulate.device_dir(dev.name) / "rootfs" / "home" / dev.user / workdir
                ).exists(), "nothing may reach a device whose host key changed"


# --- bullseye: the fallback runtime on glibc 2.31 / Python 3.9 --------------------------------

def test_bullseye_tflite_runtime_2_13_and_ort_1_19(pi_bullseye, emulated_images, full_bundle,
                                                   host_rows, tmp_path):
    dev, info = pi_bullseye, emulated_images["bullseye"]
    assert info["runtime_version"] == "2.13.0" and info["wheels"]["numpy"].startswith("1.")
    assert info["wheels"]["onnxruntime"] == "1.19.2"   # the last release with cp39 wheels
    # Byte-compiled at build (Python 3.9's parallel compileall fails under qemu): without .pyc
    # every agent child recompiled numpy and ORT in memory, ~5 s more per import under qemu.
    from edgebench.host.emulate import device_dir, get_image
    site = device_dir(dev.name) / "rootfs" / get_image("bullseye").site_packages
    assert list((site / "onnxruntime" / "__pycache__").glob("*.cpython-39.pyc"))
    code, out, err = run_cli("doctor", "--target", dev.target, "--known-hosts", dev.known_hosts,
                             "-i", dev.client_key)
    assert code == 0, out + err
    assert "tflite_runtime 2.13.0" in out and "Python 3.9" in out
    code, out, err = run_cli("deploy", "--bundle", full_bundle, "--target", dev.target,
                             "--known-hosts", dev.known_hosts, "-i", dev.client_key,
                             "--results", tmp_path / "res", "--no-progress",
                             *AGENT_OPTIONS.to_argv())
    assert code == 0, out + err
    rows = read_rows(next(p for p in run_folder(tmp_path / "res").iterdir() if p.is_dir())
                     / "results.csv")  # the device's folder, beside host.log
    assert_rows_match_host(rows, host_rows, "tflite-runtime", "2.13.0", "3.9",
                           ort_version="1.19.2")
    # What tflite-runtime 2.13 cannot run (dynamic-range FULLY_CONNECTED v12, as 2.14) is an
    # error row with the reason; every other recipe ran.
    failed = {r["recipe"]: r["error"] for r in rows if r["status"] != "ok"}
    assert list(failed) == ["dynamic"], failed
    assert "FULLY_CONNECTED" in failed["dynamic"]
