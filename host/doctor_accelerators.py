"""What a device can accelerate with: the compute-unit half of `bench-host doctor`.

A small script runs on the device's python and reports facts as JSON: the LiteRT version and
whether it has CompiledModel and a GPU accelerator, the Vulkan loader and drivers, the GPU
adapter LiteRT actually selects (found by compiling a one-op probe model on the GPU in a child
process: LiteRT names its adapter only in its log), NPU dispatch libraries and external delegate
libraries on the usual paths. The host turns the facts into rows with the exact install hint."""
from __future__ import annotations

import json

from edgebench.host.agent_archive import device_script
from edgebench.host.doctor import Check
from edgebench.host.targets.base import Target

# A 1 KB model computing relu(2x + 1) on a 1×8 float input, made with TensorFlow 2.19
# (tf.lite.TFLiteConverter.from_saved_model of a tf.Module), zlib-compressed and base64-encoded.
# tests/test_doctor_accelerators.py runs it and checks the arithmetic.
PROBE_MODEL_B64 = (
    "eNplUz1P21AUvXacD0GUUkgrWmXI0BGlQD+kdqFRSlUkvkSjTqiuJRtkKTFScCKQOjAwdKoYMjJWTAwd2GBg6FBVqANiK0N/"
    "AGJibd1z37u23PQpR34+Pve+c+99qRBR89X8ozJVqULjVKYRKoIrkIU9gSPaBS6BE4PoDPiVIcKPsIWa15CK4pghvBUl7jFw"
    "C9j0Oj0/WLddb83ptkIVZwGfoyiyZM/ctjz5/ccf/Y3ftwBT8jF3ibi87MeAxtLi29mVN3NLi/bCbLP+st6sw4v2U8D3XErb"
    "9gO70w1Cv+3ZPa+z6W8ESsP1XQCn7AvYB/pAKLHvxOv7pGbuUSk5g7kHis0pLj6TVD/ivlqqN+Gn3O69428/DanLEo/Ttaln"
    "tUmi73IW55yqPWEqWXu/o6gPXKd6h/Vi8FzN78ycQvsV4DkszM+tVBsbAeoOPbemeltWulLikHOUhOcZHgJfgCPJ2Xb8gMS3"
    "m4q/L/HDEl/Rvob5WZU5ao955ZGpeNacK5NoSipnOpf0+05R9n3cDUNiTOmLmbo7hnBZ4EZq+AC8lu9P0TuWjUi+rHi8Qt7b"
    "eC47ndAPcTM8t+G0Ws8nU/l51r2B+HhWE+DZU7vb+kd/MKDPSN9WwWe1/uG2eD4f0Jqi/Shax3UTLdFdNTeSyemVB6v7G+cw"
    "pL4z5Bj7//9ob6HCtF9T5ldQtVmqvqKaBymG5zCqzxj9CzmwlbE="
)

DELEGATES = {  # file name -> (what it is, where it comes from)
    "libedgetpu.so.1": ("Coral Edge TPU", "install libedgetpu1-std from Coral's apt repository"),
    "libarmnnDelegate.so": ("Arm NN", "take libarmnnDelegate.so from an Arm NN release (or build "
                                      "it) and pass --delegate /path/libarmnnDelegate.so:"
                                      "backends=CpuAcc,GpuAcc"),
    "libvx_delegate.so": ("NXP VX (i.MX 8M Plus NPU)", "part of NXP's i.MX BSP (tflite-vx-delegate)"),
}

# device/remote/accelerator_probe.py, sent as source (any Python 3, like doctor's facts).
_SCRIPT = device_script("accelerator_probe")


def gather_accelerators(target: Target, python: str) -> list:
    """Doctor rows for the compute units; informational (ok None) unless something is broken in a
    way the user asked about, because a CPU-only device is a fine device."""
    from edgebench.device.units import GPU_ACCELERATOR_LIBS

    res = target.run([python, "-c", _SCRIPT, "".join(PROBE_MODEL_B64),
                      ",".join(GPU_ACCELERATOR_LIBS), *DELEGATES], timeout=180)
    try:
        facts = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        detail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return [_info("accelerators", f"could not probe: {detail}")]
    return accelerator_checks(facts, python)


def accelerator_checks(f: dict, py: str) -> list:
    from edgebench.device.units import adapter_from_log

    rows = []
    litert = f.get("litert")
    new_enough = bool(litert) and _version(litert) >= (2, 3)
    if not litert:
        rows.append(_info("LiteRT", "ai-edge-litert absent: cpu only (through the "
                                          "interpreter found above)",
                          f"for gpu/npu: {py} -m pip install ai-edge-litert==2.3.0"))
    else:
        rows.append(_info("LiteRT", f"ai-edge-litert {litert}, CompiledModel "
                          f"{'yes' if f.get('compiled_model') else 'no'}, GPU accelerator "
                          f"{f.get('gpu_accelerator') or 'no'}",
                          "" if new_enough else
                          f"gpu/npu need ai-edge-litert >= 2.3: {py} -m pip install "
                          f"ai-edge-litert==2.3.0"))
    vulkan = f.get("vulkan")
    icds = ", ".join(f.get("icds") or []) or "no Vulkan driver (ICD) files"
    rows.append(_info("Vulkan", f"loader {'ok' if vulkan is True else 'missing'}; {icds}",
                      "" if vulkan is True and f.get("icds") else
                      "sudo apt install libvulkan1 mesa-vulkan-drivers (Raspberry Pi 5: Mesa's "
                      "V3D driver; Jetson: the L4T/JetPack Vulkan driver)"))
    if f.get("adapter"):
        adapter, software = adapter_from_log("Selected adapter: " + f["adapter"])
        rows.append(_info("GPU adapter", adapter + (" — a software GPU: correct results, "
                                                          "timings not representative"
                                                          if software else "")))
    elif f.get("adapter_error"):
        rows.append(_info("GPU adapter", f"none: {f['adapter_error']}",
                          "install a Vulkan driver for this GPU (see the Vulkan row)"))
    else:
        rows.append(_info("GPU adapter", "not probed (needs ai-edge-litert >= 2.3 and the "
                                               "Vulkan loader)"))
    npu = f.get("npu") or []
    loadable = [v for v, _, err in npu if not err]
    missing = [f"{v} ({err})" for v, _, err in npu if err]
    rows.append(_info("NPU dispatch",
                      ", ".join(loadable) + (" loadable" if loadable else "") if loadable else
                      ("none loadable: " + "; ".join(missing) if missing else
                       "no vendor dispatch library in ai-edge-litert"),
                      "" if loadable else "install the NPU vendor's runtime (e.g. OpenVINO for "
                                          "Intel's NPU, QNN for Qualcomm)"))
    for name, (what, hint) in DELEGATES.items():
        where = (f.get("delegates") or {}).get(name)
        rows.append(_info(f"delegate {what}", f"{where}" if where else f"{name} not found",
                          "" if where else hint))
    return rows


def _info(name: str, detail: str, hint: str = "") -> Check:
    """An informational row: a device without an accelerator is not broken, so the hint is part
    of the detail (doctor prints fixes only for failed checks)."""
    return Check(name, None, detail + (f"  → {hint}" if hint else ""))


def _version(text: str) -> tuple:
    parts = []
    for piece in str(text).split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
