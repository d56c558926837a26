"""Exclusive per-run locks: ``fcntl.flock`` on a lock file inside the run's directory.

``flock`` locks belong to an open file description, so they exclude other processes *and*
other handles in the same process, and the kernel drops them when the holder dies (even under
``kill -9``): a crashed worker never leaves a stale lock behind. The holder writes its pid and
host into the file so a refused process can say who has the run.

:func:`holder` asks whether a lock is held without taking it exclusively: it takes a *shared*
lock for an instant. A process calling :func:`acquire` at that very instant is refused once,
so :func:`acquire` retries for a short grace period before it reports the run as busy.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from scalelab.errors import DataError

__all__ = ["GRACE_SECONDS", "LockHolder", "RunBusyError", "acquire", "holder", "release"]

#: How long a non-blocking :func:`acquire` keeps retrying before it reports the lock busy.
#: Covers the instant a concurrent :func:`holder` probe holds its shared lock.
GRACE_SECONDS = 0.5
_POLL_SECONDS = 0.02


class RunBusyError(DataError):
    """Another process (or another handle in this process) holds the run's lock."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as written by the holder (``None`` when it could not be read)."""

    pid: int | None
    host: str | None

    def describe(self) -> str:
        """Return ``"pid N on HOST"`` (or as much of it as is known)."""
        if self.pid is None:
            return "another process"
        if self.pid == os.getpid() and self.host == socket.gethostname():
            return f"this process (pid {self.pid})"
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"pid {self.pid}{where}"


def acquire(
    path: Path, *, label: str, blocking: bool = False, timeout: float | None = None
) -> int:
    """Take the exclusive lock on ``path`` (created if absent) and return its file descriptor.

    Parameters
    ----------
    path : pathlib.Path
        The lock file.
    label : str
        What is locked, for messages (e.g. ``"run grid-a-s0"``).
    blocking : bool, optional
        Wait for the lock (at most ``timeout`` seconds when given) instead of failing after
        :data:`GRACE_SECONDS`.
    timeout : float, optional
        Longest wait in seconds when ``blocking``; ``None`` waits forever.

    Returns
    -------
    int
        The descriptor holding the lock; pass it to :func:`release`.

    Raises
    ------
    RunBusyError
        If another process or handle holds the lock (the message names its pid).
    DataError
        If the lock file cannot be opened or locked.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DataError(
            f"cannot open the lock file {str(path)!r} of {label} ({exc.strerror or exc}); "
            "check that the store folder is writable"
        ) from None
    try:
        if blocking and timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            wait = GRACE_SECONDS if not blocking else max(float(timeout or 0.0), 0.0)
            _acquire_polling(fd, path, label, time.monotonic() + wait)
        _write_holder(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _acquire_polling(fd: int, path: Path, label: str, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                who = _read_holder(fd).describe()
                raise RunBusyError(
                    f"{label} is being run by {who}; wait for it to finish or stop that "
                    "process (a killed process releases the lock at once)"
                ) from None
            time.sleep(_POLL_SECONDS)
        except OSError as exc:
            raise DataError(
                f"cannot lock {str(path)!r} for {label} ({exc.strerror or exc}); the store "
                "needs a file system with flock support"
            ) from None


def release(fd: int) -> None:
    """Release a lock taken by :func:`acquire` and close its descriptor."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(path: Path) -> LockHolder | None:
    """Return who holds the lock on ``path``, or ``None`` if nobody does (or it does not exist).

    Takes a shared lock for an instant, so probes never block each other.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return LockHolder(None, None)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        except OSError:
            return LockHolder(None, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _write_holder(fd: int) -> None:
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


def _read_holder(fd: int) -> LockHolder:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        pid = data.get("pid")
        host = data.get("host")
        return LockHolder(
            pid if isinstance(pid, int) else None, host if isinstance(host, str) else None
        )
    except (OSError, ValueError, AttributeError):
        return LockHolder(None, None)
