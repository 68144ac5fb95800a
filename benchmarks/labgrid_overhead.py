"""What does holding a labgrid place add to a deploy?

The same bundle deployed to the same loopback sshd (started here, as the test suite does; needs
root and openssh-server) directly as `user@127.0.0.1:PORT`, and as `labgrid:bench-a`, a place of
a real labgrid 26.0.1 coordinator + exporter on 127.0.0.1 whose NetworkService is that sshd
(tests/labgrid_farm.py; labgrid from .cache/labgrid-26.0.1, which tests/run.sh builds). Both
kinds alternate, each repeat into a fresh remote folder (a first deploy: upload, agent, pull),
so neighbours' load hits both alike. Then each labgrid-client call the labgrid path makes is
timed alone, to show where the added seconds go.

    python benchmarks/labgrid_overhead.py [--repeats 5] [--readme benchmarks/README.md]

With --readme, the "## Board farms (labgrid)" section of that file is replaced (or appended)."""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from readme_section import update_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from agent_helpers import FAST  # noqa: E402  (the tests' short measurement, one definition)

TITLE = "Board farms (labgrid)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--readme", type=Path)
    args = ap.parse_args()

    from deploy import options, session, spec_for
    from labgrid_farm import start_farm
    from tflite_factory import make_bundle
    from edgebench.host.deploy import deploy
    from edgebench.host.targets import parse_target
    from edgebench.host.targets.labgrid_fleet import deploy_fleet
    from edgebench.host.targets.labgrid_places import LabgridOptions

    work = Path(tempfile.mkdtemp(prefix="bench-labgrid-"))
    os.chmod(work, 0o755)
    S, env = session(work)
    server = S.make_server(env).start()
    (work / "farm").mkdir()
    farm = start_farm(work / "farm")
    try:
        farm.start_exporter("bench", {"bench-a": {"NetworkService": {
            "address": "127.0.0.1", "username": env.user, "port": server.port}}})
        farm.add_place("bench-a", "bench/bench-a/*", {"board": "loopback"})
        kh = work / "known_hosts"
        kh.write_text(server.known_hosts_line())
        bundle = make_bundle(work / "bundle", recipes=("fp32", "int8"))
        lab = LabgridOptions(coordinator=farm.address, client_program=farm.client,
                             records_dir=str(work / "records"))
        walls = {"direct": [], "labgrid": []}
        for rep in range(args.repeats):
            for kind in ("direct", "labgrid"):
                rd = f"bench-lg-{os.getpid()}-{kind}-{rep}"
                t0 = time.perf_counter()
                if kind == "direct":
                    out = deploy(bundle, [spec_for(env, server, rd, "direct")], work / "res",
                                 FAST, options=options(env, kh), progress=False)[0]
                else:
                    out = deploy_fleet(deploy, bundle, [parse_target("labgrid:bench-a")],
                                       work / "res", FAST, lab=lab,
                                       options=options(env, kh), remote_python=env.python,
                                       remote_dir=rd, progress=False)[0]
                walls[kind].append(time.perf_counter() - t0)
                assert out.ok, out.error
                shutil.rmtree(env.home / rd, ignore_errors=True)
        calls = {name: [] for name in ("-v places", "show", "acquire", "release",
                                       "(import only)")}
        python = str(Path(farm.client).with_name("python"))
        for _ in range(args.repeats):
            for name in calls:
                t0 = time.perf_counter()
                if name == "(import only)":   # python -c 'import labgrid.remote.client'
                    subprocess.run([python, "-c", "import labgrid.remote.client"], check=True)
                elif name == "-v places":
                    farm.lg("-v", "places")
                else:
                    farm.lg(name, place="bench-a")
                calls[name].append(time.perf_counter() - t0)
    finally:
        farm.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    direct, lg = statistics.median(walls["direct"]), statistics.median(walls["labgrid"])
    per_call = {k: statistics.median(v) for k, v in calls.items()}
    load = os.getloadavg()[0]
    lines = [
        f"## {TITLE}", "",
        f"`python benchmarks/labgrid_overhead.py --repeats {args.repeats}` on "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()}-core {platform.machine()} VM (load "
        f"average {load:.1f} at the end), labgrid 26.0.1 coordinator and exporter on 127.0.0.1, "
        f"the same bundle (2 tiny models) to the same loopback sshd, first deploys into fresh "
        f"folders, the two kinds alternating.", "",
        "| deploy | median wall s | min | max |", "|---|---:|---:|---:|",
        *(f"| {k} (`{'user@127.0.0.1:PORT' if k == 'direct' else 'labgrid:bench-a'}`) | "
          f"{statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |" for k, v in walls.items()),
        "",
        f"A labgrid place adds **{lg - direct:.1f} s** (median) to a deploy "
        f"({lg / direct:.2f}× the direct one here, where the agent's own work is a few seconds; "
        f"on a real board, whose agent runs for minutes, the same seconds are a small share).",
        "",
        "| labgrid-client call, alone | median s |", "|---|---:|",
        *(f"| `labgrid-client {k}` | {v:.2f} |" if k[0] != "(" else
          f"| `python -c 'import labgrid.remote.client'` | {v:.2f} |"
          for k, v in per_call.items()), "",
        "The labgrid path makes three such calls when the place is free (`-v places`, once for "
        "all places: the names and tags; `acquire`; `show` for the acquired resources) and one "
        "to release it. Most of each call is labgrid-client starting and importing its client "
        f"module ({per_call['(import only)']:.2f} s alone), not the coordinator: that is the "
        "price of driving labgrid through its own "
        "program (host/targets/labgrid_client.py says why), and it is paid once per place, not "
        "per model.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.readme:
        update_section(args.readme, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
