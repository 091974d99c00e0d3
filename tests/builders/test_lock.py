"""The folder writer lock: refusal naming the holder, waiting, stale locks after a kill, re-entrancy."""

import os
import signal
import time

import pytest

from builders.errors import UserError
from builders.lock import LOCK_NAME, FolderBusy, FolderLock, holds_lock, read_holder

def test_second_writer_is_refused_with_the_holder_named(tmp_path, lock_holder):
    p = lock_holder(tmp_path, "dataset root", 30)
    with pytest.raises(FolderBusy) as err:
        with FolderLock(tmp_path, "dataset root"):
            pass
    msg = str(err.value)
    assert f"pid {p.pid}" in msg and "dataset root" in msg and "-c" in msg
    assert read_holder(tmp_path)["pid"] == p.pid


def test_a_killed_holder_leaves_no_blocking_lock(tmp_path, lock_holder):
    p = lock_holder(tmp_path, "dataset root", 30)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert read_holder(tmp_path)["pid"] == p.pid  # the record is stale ...
    with FolderLock(tmp_path, "run folder"):  # ... and is taken over at once
        assert read_holder(tmp_path)["pid"] == os.getpid()
    assert read_holder(tmp_path) == {}


def test_waiting_writer_gets_the_lock_when_the_holder_ends(tmp_path, capsys, lock_holder):
    p = lock_holder(tmp_path, "dataset root", 1.0)
    t0 = time.monotonic()
    with FolderLock(tmp_path, "run folder", wait=None):
        waited = time.monotonic() - t0
    p.wait()
    assert waited > 0.3
    assert f"in use by pid {p.pid}" in capsys.readouterr().err


def test_reentrant_in_one_process_and_released(tmp_path):
    with FolderLock(tmp_path, "root"):
        with FolderLock(tmp_path / ".", "root"):
            assert holds_lock(tmp_path)
        assert holds_lock(tmp_path)
    assert not holds_lock(tmp_path)
    assert (tmp_path / LOCK_NAME).is_file()


def test_a_file_is_not_a_folder(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(UserError, match="--root .*afile is a file, not a folder"):
        with FolderLock(f, "--root"):
            pass
    assert f.read_text() == "x"
