"""Kernel limits that make this machine compute like another x86-64 CPU.

Float training is not bit-identical across CPU types: PyTorch's ATen, oneDNN (in PyTorch and
TensorFlow) and MKL pick their kernels by instruction set, so a test that trains a model gets a
different model on an Intel Xeon with AMX than on an AMD EPYC. Each setting below caps those
libraries at an older instruction set (a cap can only lower what the CPU has: ask for nothing
above it, ATen would run AVX-512 code on a CPU without it); `tests/run.sh` runs the tests marked `trained` again under
one of them, and `python tests/kernels.py NAME -- COMMAND` runs any command under another.

    python tests/kernels.py            # the settings, one a line
    python tests/kernels.py avx2       # KEY=VALUE pairs, for `env`
    python tests/kernels.py sse41 -- .venv/bin/python -m pytest -m trained
"""
from __future__ import annotations

import os
import sys

# Every variable that changes which SIMD kernels a library of the host stack runs: the cache of
# tflite_factory keys on them, and the pytest header prints the ones that are set.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                    "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "TF_ENABLE_ONEDNN_OPTS")

SETTINGS = {
    "native": ("whatever each library picks on this CPU", {}),
    "avx2": ("a CPU without AVX-512 (Zen 2, Haswell to Comet Lake)",
             {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
              "MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    "sse41": ("the oldest x86-64 kernels the libraries still have",
              {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
               "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}),
}


def active() -> dict[str, str]:
    return {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ}


def main(argv: list[str]) -> int:
    if not argv:
        for name, (what, env) in SETTINGS.items():
            pairs = " ".join(f"{k}={v}" for k, v in env.items()) or "(nothing set)"
            print(f"{name:8s} {what}: {pairs}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SETTINGS:
        print(f"kernels.py: unknown setting {name!r}; choose from: {', '.join(SETTINGS)}",
              file=sys.stderr)
        return 2
    env = SETTINGS[name][1]
    if not rest:
        print(" ".join(f"{k}={v}" for k, v in env.items()))
        return 0
    if rest[0] == "--":
        rest = rest[1:]
    os.execvpe(rest[0], rest, {**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
