"""An exclusive writer lock on a folder shared by several commands (dataset root, run folder,
weights folder).

The lock is ``flock`` on ``<folder>/.daclip.lock``: the kernel releases it when its holder
exits, however it exits, so a killed writer never leaves a lock that blocks the next run. The
file also records who holds it (pid, host, command, start time), which the refusal message
names; a record whose flock is free is stale (its writer died) and is simply taken over.

Locks are re-entrant within a process (a build that calls the manifest writer, which locks
the same root, does not deadlock), and released on exit from the ``with`` block.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

LOCK_NAME = ".daclip.lock"
_POLL_S = 0.5

_held: dict[str, list] = {}  # real path of the lock file -> [fd, depth]
_guard = threading.Lock()


class FolderBusy(UserError):
    """Another process holds the folder's writer lock."""


def _holder_text(info: dict) -> str:
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('command')!s}, since {since})"


def read_holder(folder: str | os.PathLike) -> dict:
    """The holder record of ``folder``'s lock file ({} when none or unreadable)."""
    try:
        return json.loads((Path(folder) / LOCK_NAME).read_text() or "{}")
    except (OSError, ValueError):
        return {}


class FolderLock:
    """``with FolderLock(root, "dataset root"):`` makes this process the folder's only writer.

    ``wait``: 0 refuses at once with a :class:`FolderBusy` naming the holder; a number of
    seconds waits that long (printing who it waits for); None waits as long as it takes.
    The folder is created if missing; a path that is a file is a UserError naming ``what``.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder", wait: float | None = 0):
        self.folder = Path(folder)
        self.what = what
        self.wait = wait
        self._key: str | None = None

    def __enter__(self) -> "FolderLock":
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{self.what} {self.folder} is a file, not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {self.what} {self.folder}: {exc.strerror or exc}") from None
        path = self.folder / LOCK_NAME
        key = os.path.realpath(path)
        with _guard:
            if key in _held:
                _held[key][1] += 1
                self._key = key
                return self
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot lock {self.what} {self.folder} for writing: {exc.strerror or exc}") from None
        try:
            self._acquire(fd)
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv) or sys.executable,
                "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _guard:
            _held[key] = [fd, 1]
        self._key = key
        return self

    def _acquire(self, fd: int) -> None:
        deadline = None if self.wait is None else time.monotonic() + self.wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            holder = _holder_text(read_holder(self.folder))
            if deadline is not None and time.monotonic() >= deadline:
                raise FolderBusy(f"{self.what} {self.folder} is in use by {holder}; wait for it to finish "
                                 "or use another folder")
            if not told:
                print(f"waiting for {self.what} {self.folder}, in use by {holder} ...", file=sys.stderr)
                told = True
            time.sleep(_POLL_S)

    def __exit__(self, *exc) -> None:
        with _guard:
            entry = _held.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[self._key]
        fd = entry[0]
        try:
            os.ftruncate(fd, 0)  # no holder recorded while nobody holds it
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def holds_lock(folder: str | os.PathLike) -> bool:
    """True when this process holds ``folder``'s lock (writers that require it can assert it)."""
    return os.path.realpath(Path(folder) / LOCK_NAME) in _held


def writer_rank() -> bool:
    """True in the process that writes a shared folder: rank 0 under torchrun, or the only one."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def rank0_lock(folder: str | os.PathLike, what: str = "folder") -> Iterator[FolderLock | None]:
    """``folder``'s writer lock held by the writing rank for the block; the other torchrun ranks
    (which write nothing there) hold nothing and get None."""
    if not writer_rank():
        yield None
        return
    with FolderLock(folder, what) as lock:
        yield lock
