"""Where torch trains and evaluates: `--device auto|cpu|cuda[:N]|mps` and `--amp`.

("device" elsewhere in edgebench is the board the agent measures on; this module is only about
the torch device of the workstation.)"""
from __future__ import annotations

import platform
import re
from dataclasses import dataclass

from edgebench.host.errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_HELP = ("torch device: auto (default: CUDA when available, then Apple MPS, else the CPU), "
               "cpu, cuda, cuda:N or mps")
AMP_HELP = ("mixed precision: float16 autocast with loss scaling on CUDA/MPS, bfloat16 autocast "
            "on the CPU (default off: full float32)")


def pick_device(spec: str, cuda_count: int, mps_available: bool, torch_version: str = "") -> str:
    """The device string for `spec` given what this machine has (pure: testable anywhere).
    An unknown spec or a device this machine lacks is a one-line UserError."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return "cuda:0" if cuda_count > 0 else "mps" if mps_available else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "mps":
        if not mps_available:
            raise UserError("--device mps: Apple's Metal (MPS) backend is not available on this "
                            "machine; use --device cpu or auto")
        return "mps"
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m is None:
        raise UserError(f"unknown --device {spec!r}; choose {DEVICE_CHOICES}")
    if cuda_count == 0:
        build = f"torch {torch_version}" if torch_version else "this torch"
        hint = (" is a CPU-only build: install a CUDA build of torch" if "+cpu" in torch_version
                else " sees no CUDA device (driver missing or CUDA_VISIBLE_DEVICES empty)")
        raise UserError(f"--device {spec}: no CUDA device here ({build}{hint}); "
                        f"use --device cpu or auto")
    index = int(m.group(1) or 0)
    if index >= cuda_count:
        raise UserError(f"--device {spec}: this machine has {cuda_count} CUDA device(s), "
                        f"cuda:0 to cuda:{cuda_count - 1}")
    return f"cuda:{index}"


@dataclass(frozen=True)
class TorchDevice:
    """A resolved device: `torch` is what `.to()` takes, the rest is recorded with the run."""

    requested: str
    torch: str          # "cpu", "cuda:0", "mps"
    name: str           # GPU or CPU model, for the history and the checkpoint
    amp: str | None     # autocast dtype name ("float16", "bfloat16") or None

    @property
    def type(self) -> str:
        return self.torch.split(":")[0]

    def record(self) -> dict:
        import torch

        return {"requested": self.requested, "device": self.torch, "name": self.name,
                "amp": self.amp, "torch": str(torch.__version__)}


def resolve_device(spec: str = "auto", amp: bool = False) -> TorchDevice:
    import torch

    mps = getattr(torch.backends, "mps", None)
    chosen = pick_device(spec, torch.cuda.device_count() if torch.cuda.is_available() else 0,
                         bool(mps and mps.is_available()), torch.__version__)
    if chosen.startswith("cuda"):
        name = torch.cuda.get_device_name(int(chosen.split(":")[1]))
    elif chosen == "mps":
        name = f"Apple MPS ({platform.machine()})"
    else:
        name = cpu_name()
    dtype = None
    if amp:
        dtype = "bfloat16" if chosen == "cpu" else "float16"
    return TorchDevice(requested=spec or "auto", torch=chosen, name=name, amp=dtype)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def autocast(device: TorchDevice):
    """The autocast context for a forward pass (a no-op without --amp)."""
    import contextlib

    import torch

    if device.amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, device.amp))


def grad_scaler(device: TorchDevice):
    """float16 needs loss scaling (small gradients underflow); bfloat16 and float32 do not."""
    import torch

    enabled = device.amp == "float16"
    return torch.amp.GradScaler(device.type if enabled else "cpu", enabled=enabled)
