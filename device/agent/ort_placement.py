"""Where ONNX Runtime placed a GPU row's nodes (fallback_nodes and the row's note), read after the
timed loop from one profiled inference on a session of the row's model. Its own module: it needs
both the session (ort_session) and the provider rules (ort_providers), and ort_session already
imports those rules."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from ..common import one_line
from ..runtimes import ORT_CPU_PROVIDER
from .ort_providers import choose_provider, kernel_placement, placement_fields
from .ort_session import OrtSession


def measure(job: dict, ort, result: dict, make_input) -> None:
    """Where ORT placed the row's nodes, into result (placement_fields; its note appended): one
    inference on a profiling session of the row's model. A cpu row is skipped; a failure is a
    note, the row's timing stands without it."""
    provider = choose_provider(ort, job["unit"])  # as the row's session chose it
    if provider == ORT_CPU_PROVIDER:
        return
    folder = tempfile.mkdtemp(prefix="edgebench-placement-")
    try:
        session = OrtSession(job, ort, profile_prefix=os.path.join(folder, "ort"))
        session.set_input(make_input(session))
        session.invoke()
        with open(session.end_profiling()) as fh:
            events = json.load(fh)
        del session
        nodes = kernel_placement(events)
        if not nodes:
            raise RuntimeError("the profile holds no kernel events")
        fields, note = placement_fields(nodes, provider)
    except Exception as exc:
        note, fields = "node placement not read: %s" % one_line(exc, 200), {}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.update(fields)
    if note:
        result["note"] = "; ".join(n for n in (result.get("note"), note) if n)
