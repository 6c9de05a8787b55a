from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from regpack.files import read_capped


@pytest.mark.parametrize("size", [0, 1, 70, 65535, 65536, 65537, 200_000])
def test_reads_whole_files_up_to_the_limit(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert read_capped(path, 4 << 20) == data


@pytest.mark.parametrize("limit", [10, 65536, 100_000])
def test_a_file_over_the_limit_gives_exactly_one_byte_more(tmp_path: Path, limit: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * (limit * 3))
    assert len(read_capped(path, limit)) == limit + 1
    path.write_bytes(b"x" * limit)
    assert len(read_capped(path, limit)) == limit


def test_a_folder_is_an_error_not_empty_bytes(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        read_capped(tmp_path, 100)


def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(read_capped(fifo, 100)), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO with no writer blocked"
    assert result == [b""]
