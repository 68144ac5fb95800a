"""The means by which the suite checks itself on other CPUs: tests/kernels.py applies its kernel
limits to the command it runs (and the libraries honour them), and tflite_factory refuses a trained
model whose test images sit within rounding of the decision boundary."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kernels
import tflite_factory

KERNELS = Path(kernels.__file__)


def test_a_setting_reaches_the_libraries_of_the_command_it_runs():
    probe = ("import os, torch; print(os.environ['ONEDNN_MAX_CPU_ISA'], "
             "torch.backends.cpu.get_cpu_capability())")
    proc = subprocess.run([sys.executable, KERNELS, "sse41", "--", sys.executable, "-c", probe],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["SSE41", "DEFAULT"]  # ATen's generic kernels, as asked


def test_unknown_setting_is_one_line():
    proc = subprocess.run([sys.executable, KERNELS, "avx1024"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "unknown setting 'avx1024'; choose from: native, avx2, sse41" in proc.stderr


def test_factory_cache_is_keyed_by_the_kernel_limits(monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    native = tflite_factory._cache_key()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert tflite_factory._cache_key() != native


def test_factory_refuses_a_model_with_an_image_on_the_boundary():
    labels = np.array([0, 1, 0, 1])
    clear = np.array([[2.0, -1.0], [-1.0, 2.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    tflite_factory._check_premise(clear, labels)  # margins of 1 or more, all right
    borderline = clear.copy()
    borderline[2] = [0.501, 0.5]
    with pytest.raises(AssertionError, match="smallest logit margin of 0.001"):
        tflite_factory._check_premise(borderline, labels)
    with pytest.raises(AssertionError, match="accuracy 0.500"):  # clear, but half of it wrong
        tflite_factory._check_premise(clear, np.array([0, 1, 1, 0]))
