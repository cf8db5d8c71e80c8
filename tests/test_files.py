"""The one atomic write: complete or absent, short temporary names, stale ones cleaned."""

import os
import subprocess
import sys

import pytest

from clothes_extractor.errors import OutputError
from clothes_extractor.runtime.files import PARTIAL_PATTERN, check_writable_file, remove_stale_partials, write_atomic


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "sub" / "out.png"
    write_atomic(target, b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]
    write_atomic(target, lambda handle: handle.write(b"more"))
    assert target.read_bytes() == b"more"


def test_a_name_of_255_bytes_can_be_written(tmp_path):
    # The temporary name is short whatever the target's: a legal name stays writable.
    target = tmp_path / ("n" * 251 + ".png")
    write_atomic(target, b"x")
    assert target.read_bytes() == b"x"


def test_a_failed_write_leaves_nothing_and_says_why(tmp_path):
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(OutputError, match="a folder of that name is in the way"):
        write_atomic(tmp_path / "taken.png", b"x")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("encoder died")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "b.png", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]


def test_stale_partials_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ce-{int(dead.stdout)}-0123abcd.partial"
    alive = tmp_path / f".ce-{os.getpid()}-89abcdef.partial"
    other = tmp_path / ".not-ours.partial"
    for path in (stale, alive, other):
        path.write_bytes(b"x")
    assert PARTIAL_PATTERN.match(stale.name)
    assert remove_stale_partials(tmp_path) == 1
    assert not stale.exists() and alive.exists() and other.exists()


def test_output_files_named_by_options_are_checked_first(tmp_path):
    check_writable_file(tmp_path / "new" / "sheet.png", "--sheet", (".png",))
    assert list((tmp_path / "new").iterdir()) == []  # the check leaves nothing behind
    with pytest.raises(OutputError, match="must end in .png"):
        check_writable_file(tmp_path / "sheet", "--sheet", (".png",))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_writable_file(tmp_path / "dir.png", "--sheet", (".png",))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot be written"):
        check_writable_file(tmp_path / "file" / "sheet.png", "--sheet", (".png",))
