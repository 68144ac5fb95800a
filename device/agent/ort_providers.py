"""ONNX Runtime's compute units: which execution provider a unit takes on this device
(runtimes.FILE_RUNTIMES' providers: the first the installed onnxruntime has), the session's
providers around it, and where ORT placed each node.

Placement is read from a profiled run on a session of its own after the row's timed loop (never
inside it): ORT's profiler names the provider of every node it ran (`<node>_kernel_time` events,
args.provider), in the graph ORT optimised, the graph the timed session ran. The other source,
ORT's verbose log ("Node(s) placed on [...]"), would need the timed session itself loaded at
verbose severity (its load time then includes the logging of every optimisation pass), and its
wording is not an API; the profile's events are what op_profile_ort.py reads already. A cpu row
has nothing to place elsewhere and skips the pass."""
from __future__ import annotations

import re

from ..common import AgentError, one_line
from ..runtimes import BY_NAME, ONNXRUNTIME, ORT_CPU_PROVIDER

KERNEL_SUFFIX = "_kernel_time"
# Nodes ORT adds itself to move tensors between the CPU and the provider's memory: they run on
# the provider and are not the model's.
TRANSFER_OPS = ("MemcpyFromHost", "MemcpyToHost")
NAMES_IN_NOTE = 8  # node names a note lists per op type; fallback_nodes has them all


def choose_provider(ort, unit: dict) -> str:
    """The execution provider of the row's unit: the first of its providers this onnxruntime
    has; an AgentError naming what to install when it has none of them."""
    spec = BY_NAME[ONNXRUNTIME]
    wanted = spec["providers"][unit["accelerator"]]
    available = list(ort.get_available_providers())
    for provider in wanted:
        if provider in available:
            return provider
    raise AgentError("%s needs %s; onnxruntime %s here has %s: %s" % (
        unit["spec"], " or ".join(wanted), getattr(ort, "__version__", "?"),
        ", ".join(available) or "none", spec["provider_install"].get(unit["accelerator"],
                                                                     spec["install"])))


def session_providers(provider: str, unit: dict) -> list:
    """The CPU takes the nodes the provider lacks, except on gpu! (then ORT refuses the model:
    session.disable_cpu_ep_fallback, set in ort_session)."""
    if provider == ORT_CPU_PROVIDER or unit["require_full"]:
        return [provider]
    return [provider, ORT_CPU_PROVIDER]


def ort_reason(text: str) -> str:
    """The why of one of ORT's checks ("<file>:<line> <function> <condition> was false. <why>")."""
    text = str(text).strip()
    return text.split(" was false. ", 1)[1] if " was false. " in text else text


def start_failure(provider: str, log: str, unit: dict, exc=None) -> str:
    """Why a session did not start on `provider`, from ORT's exception or what it printed and
    logged: onnxruntime's Python wrapper catches a provider that fails to start, prints "EP
    Error ... when using [...]" and retries on the CPU alone (raising the retry's error from the
    provider's), and a CUDA provider whose libraries are missing may only log."""
    printed = re.search(r"EP Error (.*?) when using \[", log, re.S)
    if exc is not None and not printed:
        if unit["require_full"] and "fallback to CPU EP has been explicitly disabled" in str(exc):
            return ("not fully accelerated: some nodes of this model have no kernel on %s (%s "
                    "asks for the whole model there; the gpu unit names them)"
                    % (provider, unit["spec"]))
        return "%s did not start: %s" % (provider, one_line(ort_reason(exc), 300))
    if printed:
        reason = ort_reason(printed.group(1))
    else:
        errors = [line.strip() for line in log.splitlines() if "[E:" in line]
        reason = errors[-1] if errors else "ONNX Runtime's log is in runtime.log"
    hint = ""
    if provider == "WebGpuExecutionProvider" and "adapter" in reason.lower():
        hint = (" (is a Vulkan driver installed, e.g. mesa-vulkan-drivers or the GPU vendor's, "
                "and may this user use it?)")
    fell_back = "" if exc is not None else (
        "; ONNX Runtime fell back to the CPU, which is not measured under %s" % unit["spec"])
    return "%s did not start: %s%s%s" % (provider, one_line(reason, 300), hint, fell_back)


def kernel_placement(events: list) -> list:
    """[(node, op_type, provider)] of every node in an ORT profile, once each, in run order."""
    seen, nodes = set(), []
    for e in events:
        name = e.get("name") or ""
        if e.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        args = e.get("args") or {}
        op_type = args.get("op_name", "")
        node = name[:-len(KERNEL_SUFFIX)] or "%s#%s" % (op_type, args.get("node_index", "?"))
        if node not in seen:
            seen.add(node)
            nodes.append((node, op_type, args.get("provider", "")))
    return nodes


def placement_fields(nodes: list, provider: str) -> tuple:
    """(row fields, note) of a placement: fully_accelerated, delegated_nodes (the model's nodes on
    the provider), fallback_nodes (schema.py's format) and, when some ran elsewhere, a note
    naming them by provider and op type."""
    model_nodes = [n for n in nodes if n[1] not in TRANSFER_OPS]
    outside = [n for n in model_nodes if n[2] != provider]
    fields = {"fully_accelerated": not outside,
              "delegated_nodes": len(model_nodes) - len(outside),
              "fallback_nodes": ";".join("%s:%s:%s" % (p, op, node.replace(";", ","))
                                         for node, op, p in outside)}
    if not outside:
        return fields, None
    parts = []
    for elsewhere in sorted(set(p for _, _, p in outside)):
        by_op = {}
        for node, op, p in outside:
            if p == elsewhere:
                by_op.setdefault(op, []).append(node)
        ops = ", ".join("%s \u00d7%d (%s)" % (op, len(names), ", ".join(
            names[:NAMES_IN_NOTE] + (["..."] if len(names) > NAMES_IN_NOTE else [])))
            for op, names in sorted(by_op.items()))
        count = sum(len(names) for names in by_op.values())
        parts.append("%d of %d nodes ran on %s, outside %s: %s" % (
            count, len(model_nodes), elsewhere or "an unnamed provider", provider, ops))
    return fields, "; ".join(parts)
