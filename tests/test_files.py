"""The one temp-and-rename (edgebench.device.common, used by host and agent alike)."""
from __future__ import annotations

import pytest

from edgebench.host.files import atomic_path, write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "table.csv"
    write_atomic(path, "old\n")

    def broken(fh):
        fh.write("half a ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    write_atomic(str(path), b"new\n")
    assert path.read_bytes() == b"new\n"


def test_atomic_path_renames_only_on_success(tmp_path):
    path = tmp_path / "model.bin"
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path and not path.exists()
        tmp.write_bytes(b"x")
    assert path.read_bytes() == b"x"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"y")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"x" and not tmp.exists()
