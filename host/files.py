"""File helpers shared by the host stages: the device package's own (one copy for both sides)."""
from __future__ import annotations

from edgebench.device.common import atomic_path, sha256_file, write_atomic

__all__ = ["atomic_path", "sha256_file", "write_atomic"]
